// A relocatable ELF object holding one blob of bytes under one symbol, written directly:
// embedding a model's weights this way costs one write of the bytes, where `.incbin` through
// the assembler cost a write of a raw copy, a read and a second write (2.8 s of BERT-base's
// cold compile, docs/perf.md).
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

namespace kiln::aot {

/// Writes to `out` an ELF object for this machine with a 64-byte aligned, read-only, hidden
/// global `symbol` of `size` bytes, whose bytes `writeBytes` writes (exactly `size` of them).
/// False on a write error (errno says why) or when writeBytes wrote another count.
bool writeBlobObject(std::FILE *out, const std::string &symbol, uint64_t size,
                     const std::function<bool(std::FILE *)> &writeBytes);

} // namespace kiln::aot
