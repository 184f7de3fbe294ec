// model.so's weights outside the link (include/kiln/weights_section.h says why and how the
// library finds them when loaded): the assembly of the expected id, compiled like any other
// source, and the section appended to the linked file.
#pragma once

#include <kiln/weights_section.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>

namespace kiln::aot {

/// Assembly defining the hidden `kiln_weights_id` (magic, `hash`, `size`): what model.so's
/// constructor expects the appended section to hold.
std::string weightsIdAsm(uint64_t size, uint64_t hash);

/// Appends to the linked ELF shared library `so` the section KILN_WEIGHTS_SECTION: its file
/// offset KILN_WEIGHTS_ALIGN-aligned, the `id.size` bytes that `writeBytes` writes, then `id`
/// as the trailer; the section names and headers are written anew after it. False on a
/// write error (errno says why, for the user: a full disk, a file size limit), or with errno
/// EINVAL on a file that is not a 64-bit little-endian ELF with section headers, ends early,
/// or when writeBytes wrote another count (a kiln bug each).
bool appendWeightsSection(const std::filesystem::path &so, const kiln_weights_id_v1 &id,
                          const std::function<bool(std::FILE *)> &writeBytes);

} // namespace kiln::aot
