// writeBlobObject (elf_object.h): ELF header, the blob as .rodata, .note.GNU-stack (no
// executable stack), a symbol table of one symbol, its string tables, section headers.
#include "aot/elf_object.h"

#include <elf.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace kiln::aot {
namespace {

#if defined(__x86_64__)
constexpr Elf64_Half kMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr Elf64_Half kMachine = EM_AARCH64;
#else
#error "kiln embeds weights in ELF objects for x86-64 and AArch64 hosts only"
#endif

uint64_t alignUp(uint64_t x, uint64_t a) {
  return (x + a - 1) / a * a;
}

bool writeAll(std::FILE *f, const void *p, size_t n) {
  return std::fwrite(p, 1, n, f) == n;
}

bool pad(std::FILE *f, uint64_t from, uint64_t to) {
  static const char zeros[64] = {};
  for (; from < to; from += std::min<uint64_t>(64, to - from))
    if (!writeAll(f, zeros, std::min<uint64_t>(64, to - from))) return false;
  return true;
}

} // namespace

bool writeBlobObject(std::FILE *out, const std::string &symbol, uint64_t size,
                     const std::function<bool(std::FILE *)> &writeBytes) {
  enum : Elf64_Half { kNull, kRodata, kNoteStack, kSymtab, kStrtab, kShstrtab, kCount };
  static const char kNames[] = "\0.rodata\0.note.GNU-stack\0.symtab\0.strtab\0.shstrtab";
  const std::string shstr(kNames, sizeof kNames); // offsets 1, 9, 25, 33, 41
  const std::string strtab = std::string(1, '\0') + symbol + '\0';
  Elf64_Sym syms[2] = {};
  syms[1].st_name = 1;
  syms[1].st_info = ELF64_ST_INFO(STB_GLOBAL, STT_OBJECT);
  syms[1].st_other = STV_HIDDEN;
  syms[1].st_shndx = kRodata;
  syms[1].st_size = size;

  const uint64_t blobAt = alignUp(sizeof(Elf64_Ehdr), 64);
  const uint64_t symAt = alignUp(blobAt + size, 8), strAt = symAt + sizeof syms;
  const uint64_t shstrAt = strAt + strtab.size();
  const uint64_t headersAt = alignUp(shstrAt + shstr.size(), 8);

  Elf64_Shdr sh[kCount] = {};
  auto section = [&](Elf64_Half i, uint32_t name, uint32_t type, uint64_t flags, uint64_t at,
                     uint64_t bytes, uint64_t align) {
    sh[i].sh_name = name;
    sh[i].sh_type = type;
    sh[i].sh_flags = flags;
    sh[i].sh_offset = at;
    sh[i].sh_size = bytes;
    sh[i].sh_addralign = align;
  };
  section(kRodata, 1, SHT_PROGBITS, SHF_ALLOC, blobAt, size, 64);
  section(kNoteStack, 9, SHT_PROGBITS, 0, blobAt + size, 0, 1);
  section(kSymtab, 25, SHT_SYMTAB, 0, symAt, sizeof syms, 8);
  sh[kSymtab].sh_link = kStrtab;
  sh[kSymtab].sh_info = 1; // the first global symbol
  sh[kSymtab].sh_entsize = sizeof(Elf64_Sym);
  section(kStrtab, 33, SHT_STRTAB, 0, strAt, strtab.size(), 1);
  section(kShstrtab, 41, SHT_STRTAB, 0, shstrAt, shstr.size(), 1);

  Elf64_Ehdr eh = {};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
  eh.e_type = ET_REL;
  eh.e_machine = kMachine;
  eh.e_version = EV_CURRENT;
  eh.e_shoff = headersAt;
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_shentsize = sizeof(Elf64_Shdr);
  eh.e_shnum = kCount;
  eh.e_shstrndx = kShstrtab;

  if (!writeAll(out, &eh, sizeof eh) || !pad(out, sizeof eh, blobAt)) return false;
  if (!writeBytes(out)) return false;
  const long end = std::ftell(out);
  if (end < 0 || static_cast<uint64_t>(end) != blobAt + size) {
    if (end >= 0) errno = EINVAL; // the blob writer wrote another count: a kiln bug
    return false;
  }
  return pad(out, blobAt + size, symAt) && writeAll(out, syms, sizeof syms) &&
         writeAll(out, strtab.data(), strtab.size()) && writeAll(out, shstr.data(), shstr.size()) &&
         pad(out, shstrAt + shstr.size(), headersAt) && writeAll(out, sh, sizeof sh);
}

} // namespace kiln::aot
