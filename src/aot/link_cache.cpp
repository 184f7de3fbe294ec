#include "aot/link_cache.h"

#include "support/error.h"

#define XXH_INLINE_ALL // header-only: no library to link
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace kiln::aot {

namespace fs = std::filesystem;

namespace {

fs::path sidecarOf(const fs::path &linked) {
  fs::path p = linked;
  p += ".xxh3";
  return p;
}

/// XXH3-64 of a file's bytes, or nothing when it cannot be read.
std::optional<uint64_t> fileHash(const fs::path &p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  XXH3_state_t state;
  XXH3_INITSTATE(&state);
  XXH3_64bits_reset(&state);
  std::vector<char> buf(size_t{4} << 20);
  bool ok = true;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n == 0) break;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ok = false;
      break;
    }
    XXH3_64bits_update(&state, buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  if (!ok) return std::nullopt;
  return XXH3_64bits_digest(&state);
}

std::optional<uint64_t> readSidecar(const fs::path &linked) {
  std::FILE *f = std::fopen(sidecarOf(linked).c_str(), "r");
  if (!f) return std::nullopt;
  uint64_t h = 0;
  bool ok = std::fscanf(f, "%" SCNx64, &h) == 1;
  std::fclose(f);
  return ok ? std::optional<uint64_t>(h) : std::nullopt;
}

/// Writes the sidecar of `linked` (to a temp name, then renamed); false on any failure.
bool writeSidecar(const fs::path &linked, uint64_t hash) {
  fs::path tmp = sidecarOf(linked);
  tmp += ".tmp" + std::to_string(getpid());
  std::FILE *f = std::fopen(tmp.c_str(), "w");
  bool ok = f && std::fprintf(f, "%016" PRIx64 "\n", hash) > 0;
  if (f && std::fclose(f) != 0) ok = false;
  std::error_code ec;
  if (ok) fs::rename(tmp, sidecarOf(linked), ec);
  if (!ok || ec) fs::remove(tmp, ec);
  return ok && !ec;
}

void dropEntry(const fs::path &linked) {
  std::error_code ec;
  fs::remove(linked, ec);
  fs::remove(sidecarOf(linked), ec);
}

/// Copies `in` to `out` inside the kernel (no user-space buffer; a reflink where the file
/// system can); falls back to read/write where the kernel cannot. 0, or the errno of the failure.
int copyFileContents(int in, int out) {
  bool first = true;
  for (;;) {
    ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, size_t{1} << 30, 0);
    if (n == 0) return 0;
    if (n > 0) {
      first = false;
      continue;
    }
    if (errno == EINTR) continue;
    if (!first || (errno != EXDEV && errno != ENOSYS && errno != EOPNOTSUPP && errno != EINVAL))
      return errno;
    break; // not supported between these files: copy through a buffer
  }
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n == 0) return 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    for (ssize_t at = 0; at < n;) {
      ssize_t w = ::write(out, buf.data() + at, static_cast<size_t>(n - at));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return w < 0 ? errno : EIO;
      at += w;
    }
  }
}

/// Copies file `from` to a new file `to`: 0, or the errno of the failure (`to` removed then).
int copyFile(const fs::path &from, const fs::path &to) {
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  int dst = in >= 0 ? ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666) : -1;
  int err = in < 0 || dst < 0 ? errno : copyFileContents(in, dst);
  if (dst >= 0 && ::close(dst) != 0 && !err) err = errno;
  if (in >= 0) ::close(in);
  if (err) {
    std::error_code ec;
    fs::remove(to, ec);
  }
  return err;
}

} // namespace

bool cachedLibraryUsable(const fs::path &linked) {
  struct stat st = {};
  if (::stat(linked.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  std::optional<uint64_t> want = readSidecar(linked);
  if (!want) {
    if (st.st_nlink == 1) return true; // a private copy (an older kiln's entry)
    dropEntry(linked);
    return false;
  }
  std::optional<uint64_t> have = fileHash(linked);
  if (have && *have == *want) return true;
  dropEntry(linked); // written in place through model.so, or unreadable: link again
  return false;
}

bool alreadyThere(const fs::path &linked, const fs::path &out) {
  int a = ::open(linked.c_str(), O_RDONLY | O_CLOEXEC);
  int b = a >= 0 ? ::open(out.c_str(), O_RDONLY | O_CLOEXEC) : -1;
  struct stat sa = {}, sb = {};
  bool same = b >= 0 && ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && S_ISREG(sb.st_mode) &&
              sa.st_size == sb.st_size && sa.st_size > 0;
  // The entry's own inode (the cache's hard link to this very output): the same bytes.
  const bool sameFile = same && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  // Else compared byte for byte through read-only windows of 64 MiB, each unmapped before the
  // next: the compile's peak RSS stays near the model's size (on the development VM reading
  // both copies of BERT-base from the page cache took ~0.1 s, writing a fresh copy 1.2 s).
  constexpr size_t kWindow = size_t{64} << 20;
  const size_t n = same && !sameFile ? static_cast<size_t>(sa.st_size) : 0;
  for (size_t at = 0; same && at < n; at += kWindow) {
    const size_t len = std::min(kWindow, n - at);
    const off_t off = static_cast<off_t>(at);
    void *pa = ::mmap(nullptr, len, PROT_READ, MAP_PRIVATE, a, off);
    void *pb = pa != MAP_FAILED ? ::mmap(nullptr, len, PROT_READ, MAP_PRIVATE, b, off) : MAP_FAILED;
    same = pb != MAP_FAILED && std::memcmp(pa, pb, len) == 0;
    if (pb != MAP_FAILED) ::munmap(pb, len);
    if (pa != MAP_FAILED) ::munmap(pa, len);
  }
  if (b >= 0) ::close(b);
  if (a >= 0) ::close(a);
  return same && ::utimensat(AT_FDCWD, out.c_str(), nullptr, 0) == 0;
}

void writeFailed(const fs::path &p, int err) {
  fail("cannot write '{}': {}{}", p.string(), std::strerror(err),
       err == ENOSPC || err == EFBIG || err == EDQUOT ? " (disk full or file size limit)" : "");
}

void copyFromCache(const fs::path &linked, const fs::path &tmpOut, const fs::path &out) {
  if (int err = copyFile(linked, tmpOut)) writeFailed(out, err);
}

void storeInCache(const fs::path &tmpOut, const fs::path &linked) {
  std::optional<uint64_t> hash = fileHash(tmpOut);
  if (!hash || !writeSidecar(linked, *hash)) return;
  fs::path tmp = linked;
  tmp += ".tmp" + std::to_string(getpid());
  std::error_code ec;
  fs::remove(tmp, ec);
  if (::link(tmpOut.c_str(), tmp.c_str()) != 0 && copyFile(tmpOut, tmp) != 0) return;
  fs::rename(tmp, linked, ec);
  if (ec) fs::remove(tmp, ec);
}

} // namespace kiln::aot
