// The link of model.so (linking.h): writeBlobObject writes an ELF header, the blob as
// .rodata, .note.GNU-stack (no executable stack), a symbol table of one symbol, its string
// tables and the section headers; then the linker, RUNPATH and link cache key.
#include "aot/linking.h"

#include "aot/install_paths.h"
#include "aot/subprocess.h"
#include "support/hash.h"

#include <elf.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

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

namespace fs = std::filesystem;

/// The RUNPATH of model.so: $ORIGIN (libkiln_rt copied next to it), then the normal library
/// path. A build-tree kiln adds its build tree, an overridden KILN_RT_LIB_DIR that directory.
std::string runpathFlags() {
  std::string flags = " -Wl,-rpath," + shellQuote("$ORIGIN");
  const KilnPaths &paths = kilnPaths();
  if (!paths.installed || paths.overridden)
    flags += " -Wl,-rpath," + shellQuote(paths.runtimeLibDir);
  return flags;
}

/// The linker flag of the model.so link: lld when g++ can use it (Debian's `lld`), else gold
/// (binutils), else GNU ld. GNU ld took 4.5 s of BERT-base's cold compile to copy its 438 MB
/// of weights into model.so, gold 0.98 s, lld 0.35 s (docs/perf.md). KILN_LINKER=bfd, gold
/// or lld picks one (bfd: g++'s default).
std::string linkerFlag() {
  static const std::string flag = [] {
    auto works = [](const char *ld) {
      return runShell(std::string("g++ -fuse-ld=") + ld + " -Wl,--version >/dev/null 2>&1") == 0;
    };
    const char *env = std::getenv("KILN_LINKER");
    const std::string want = env ? env : "";
    if (want == "bfd") return std::string();
    for (const char *ld : {"lld", "gold"})
      if ((want.empty() || want == ld) && works(ld)) return " -fuse-ld=" + std::string(ld);
    return std::string();
  }();
  return flag;
}

/// The cache key of a link: its command with the temporary output path taken out (the
/// SONAME in the command names the output), and the runtime library's size and time.
std::string linkKey(const std::string &link, const fs::path &tmpOut, const fs::path &out) {
  std::string cmd = link;
  std::string tmp = shellQuote(tmpOut.string());
  if (size_t at = cmd.find(tmp); at != std::string::npos) cmd.replace(at, tmp.size(), "OUT");
  std::error_code sizeError, timeError;
  fs::path rt = fs::path(kilnPaths().runtimeLibDir) / "libkiln_rt.so";
  auto size = fs::file_size(rt, sizeError);
  auto time = fs::last_write_time(rt, timeError).time_since_epoch().count();
  return hexHash(fnv1a(
      cmd + out.filename().string(),
      fnv1a(std::to_string(sizeError ? 0 : size) + ":" + std::to_string(timeError ? 0 : time))));
}

} // namespace kiln::aot
