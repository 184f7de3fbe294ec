// model.so's weights outside the link (weights_section.h): the id's assembly and the
// section appended after the link. The append leaves the linker's section names and headers
// where they were (dead bytes, a few KiB) and writes extended copies after the weights, so
// nothing already written moves and the weights are written exactly once.
#include "aot/weights_section.h"

#include <elf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace kiln::aot {
namespace {

uint64_t alignUp(uint64_t x, uint64_t a) {
  return (x + a - 1) / a * a;
}

/// False on a read error, or with errno EINVAL where the file ends first.
bool readAt(std::FILE *f, uint64_t at, void *p, size_t n) {
  if (std::fseek(f, static_cast<long>(at), SEEK_SET) != 0) return false;
  if (std::fread(p, 1, n, f) == n) return true;
  if (!std::ferror(f)) errno = EINVAL;
  return false;
}

bool writeAll(std::FILE *f, const void *p, size_t n) {
  return std::fwrite(p, 1, n, f) == n;
}

bool padTo(std::FILE *f, uint64_t from, uint64_t to) {
  static const char zeros[256] = {};
  for (; from < to; from += std::min<uint64_t>(sizeof zeros, to - from))
    if (!writeAll(f, zeros, std::min<uint64_t>(sizeof zeros, to - from))) return false;
  return true;
}

bool invalid() {
  errno = EINVAL;
  return false;
}

bool isOurElf(const Elf64_Ehdr &eh) {
  return std::memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_ident[EI_CLASS] == ELFCLASS64 &&
         eh.e_ident[EI_DATA] == ELFDATA2LSB && eh.e_shentsize == sizeof(Elf64_Shdr) &&
         eh.e_shoff != 0 && eh.e_shnum > 0 && eh.e_shnum < SHN_LORESERVE - 1 &&
         eh.e_shstrndx != SHN_UNDEF && eh.e_shstrndx < eh.e_shnum;
}

bool append(std::FILE *f, const kiln_weights_id_v1 &id,
            const std::function<bool(std::FILE *)> &writeBytes) {
  Elf64_Ehdr eh;
  if (!readAt(f, 0, &eh, sizeof eh)) return false;
  if (!isOurElf(eh)) return invalid();
  std::vector<Elf64_Shdr> sh(eh.e_shnum + 1u);
  if (!readAt(f, eh.e_shoff, sh.data(), eh.e_shnum * sizeof(Elf64_Shdr))) return false;
  Elf64_Shdr &strSection = sh[eh.e_shstrndx];
  std::string names(strSection.sh_size, '\0');
  if (!readAt(f, strSection.sh_offset, names.data(), names.size())) return false;

  if (std::fseek(f, 0, SEEK_END) != 0) return false;
  const long end = std::ftell(f);
  if (end < 0) return false;
  const uint64_t dataAt = alignUp(static_cast<uint64_t>(end), KILN_WEIGHTS_ALIGN);
  if (!padTo(f, static_cast<uint64_t>(end), dataAt) || !writeBytes(f)) return false;
  const long written = std::ftell(f);
  if (written < 0) return false;
  if (static_cast<uint64_t>(written) != dataAt + id.size) return invalid();
  if (!writeAll(f, &id, sizeof id)) return false;

  Elf64_Shdr &weights = sh.back();
  weights = Elf64_Shdr{};
  weights.sh_name = static_cast<Elf64_Word>(names.size());
  weights.sh_type = SHT_PROGBITS;
  weights.sh_offset = dataAt;
  weights.sh_size = id.size + sizeof id;
  weights.sh_addralign = KILN_WEIGHTS_ALIGN;
  names += KILN_WEIGHTS_SECTION;
  names += '\0';
  strSection.sh_offset = dataAt + id.size + sizeof id;
  strSection.sh_size = names.size();
  const uint64_t headersAt = alignUp(strSection.sh_offset + names.size(), 8);
  if (!writeAll(f, names.data(), names.size()) ||
      !padTo(f, strSection.sh_offset + names.size(), headersAt) ||
      !writeAll(f, sh.data(), sh.size() * sizeof(Elf64_Shdr)))
    return false;
  eh.e_shoff = headersAt;
  eh.e_shnum = static_cast<Elf64_Half>(sh.size());
  return std::fseek(f, 0, SEEK_SET) == 0 && writeAll(f, &eh, sizeof eh);
}

} // namespace

std::string weightsIdAsm(uint64_t size, uint64_t hash) {
  return "  .section .rodata.kiln_weights_id,\"a\"\n  .balign 8\n"
         "  .globl kiln_weights_id\n  .hidden kiln_weights_id\n"
         "  .type kiln_weights_id, @object\n  .size kiln_weights_id, 24\nkiln_weights_id:\n"
         "  .quad " +
         std::to_string(KILN_WEIGHTS_MAGIC) + ", " + std::to_string(hash) + ", " +
         std::to_string(size) + "\n  .section .note.GNU-stack,\"\",@progbits\n";
}

bool appendWeightsSection(const std::filesystem::path &so, const kiln_weights_id_v1 &id,
                          const std::function<bool(std::FILE *)> &writeBytes) {
  errno = 0;
  std::FILE *f = std::fopen(so.c_str(), "r+b");
  if (!f) return false;
  bool ok = append(f, id, writeBytes) && std::fflush(f) == 0;
  const int err = ok ? 0 : (errno ? errno : EIO);
  if (std::fclose(f) != 0 && ok) return false;
  errno = err;
  return ok;
}

} // namespace kiln::aot
