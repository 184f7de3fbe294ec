// The link of model.so beyond its compiled objects: the weights as a relocatable ELF object
// written directly (one write of the bytes, where `.incbin` through the assembler cost a raw
// copy, a read and a second write: 2.8 s of BERT-base's cold compile, docs/perf.md), which
// linker runs, the RUNPATH, and the key under which the linked library is cached.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>

namespace kiln::aot {

/// Writes to `out` an ELF object for this machine with a 64-byte aligned, read-only, hidden
/// global `symbol` of `size` bytes, whose bytes `writeBytes` writes (exactly `size` of them).
/// False on a write error (errno says why) or when writeBytes wrote another count.
bool writeBlobObject(std::FILE *out, const std::string &symbol, uint64_t size,
                     const std::function<bool(std::FILE *)> &writeBytes);

/// " -fuse-ld=lld", " -fuse-ld=gold" or "" (GNU ld), chosen once per process.
std::string linkerFlag();

/// " -Wl,-rpath,..." flags: $ORIGIN, then kiln's runtime directory when not installed.
std::string runpathFlags();

/// The cache key of a link command writing tmpOut for out.
std::string linkKey(const std::string &link, const std::filesystem::path &tmpOut,
                    const std::filesystem::path &out);

} // namespace kiln::aot
