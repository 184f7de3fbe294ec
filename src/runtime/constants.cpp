// Constant sets: pointers into the embedded weights blob or a mapped external file.
#include "container.h"
#include "error.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kiln::rt {

ConstantSet::~ConstantSet() {
  if (device)
    device->free(owned);
  else
    std::free(owned);
}

MappedFile::~MappedFile() {
  if (data) munmap(data, size);
}

namespace {

int mapFile(const char *path, MappedFile &file) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(KILN_ERR_NOT_FOUND, "cannot open weights file '%s': %s", path,
                std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return fail(KILN_ERR_INVALID_ARGUMENT, "cannot stat weights file '%s': %s", path,
                std::strerror(err));
  }
  file.size = static_cast<size_t>(st.st_size);
  if (file.size == 0) {
    close(fd);
    return KILN_OK;
  }
  void *p = mmap(nullptr, file.size, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  close(fd); // the mapping keeps the file alive
  if (p == MAP_FAILED) {
    file.size = 0;
    return fail(KILN_ERR_OUT_OF_MEMORY, "cannot map weights file '%s': %s", path,
                std::strerror(err));
  }
  file.data = p;
  return KILN_OK;
}

} // namespace

bool isReadOnlyFileMapping(const void *p, size_t n) {
  if (!p || n == 0) return false;
  FILE *maps = std::fopen("/proc/self/maps", "re");
  if (!maps) return false;
  uintptr_t at = reinterpret_cast<uintptr_t>(p), end = at + n;
  char line[4096];
  // Lines are sorted by address: walk the mappings covering [at, end) without a gap.
  while (at < end && std::fgets(line, sizeof line, maps)) {
    unsigned long lo, hi, inode;
    char perms[5];
    if (std::sscanf(line, "%lx-%lx %4s %*s %*s %lu", &lo, &hi, perms, &inode) != 4) break;
    if (hi <= at) continue;
    if (lo > at) break; // a hole
    bool readOnlyPrivateFile = perms[1] == '-' && perms[3] == 'p' && inode != 0;
    if (!readOnlyPrivateFile) break;
    at = hi;
  }
  std::fclose(maps);
  return at >= end;
}

int loadConstants(const kiln_model_desc_v1 &desc, const char *weightsPath, MappedFile &file,
                  ConstantSet &set) {
  uint64_t needed = 0;
  for (int32_t i = 0; i < desc.num_constants; ++i) {
    const kiln_constant_desc_v1 &c = desc.constants[i];
    needed = std::max<uint64_t>(needed, c.offset + c.nbytes);
  }

  const char *base = reinterpret_cast<const char *>(desc.weights);
  size_t size = desc.weights_size;
  const char *source = "embedded weights";
  if (weightsPath) {
    if (int st = mapFile(weightsPath, file)) return st;
    base = static_cast<const char *>(file.data);
    size = file.size;
    source = weightsPath;
  } else if (!base && needed > 0) {
    return fail(KILN_ERR_INVALID_ARGUMENT,
                "model was built with external weights; set kiln_container_options.weights_path");
  }
  if (size < needed)
    return fail(KILN_ERR_INVALID_ARGUMENT,
                "%s hold %zu bytes but the model's constants need %llu; wrong weights file?",
                source, size, static_cast<unsigned long long>(needed));

  set.base = base;
  set.size = size;
  set.ptrs.assign(desc.num_constants > 0 ? desc.num_constants : 1, nullptr);
  for (int32_t i = 0; i < desc.num_constants; ++i)
    set.ptrs[i] = const_cast<char *>(base + desc.constants[i].offset);
  return KILN_OK;
}

} // namespace kiln::rt
