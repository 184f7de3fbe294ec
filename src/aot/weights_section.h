// model.so's weights outside the link (include/kiln/weights_section.h says why and how the
// library finds them when loaded): the assembly of the page-aligned reservation and the
// expected id, compiled like any other source, and the section appended to the linked file.
#pragma once

#include <kiln/weights_section.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>

namespace kiln::aot {

/// Assembly defining the hidden `kiln_weights_blob` (`size` bytes rounded up to whole pages
/// of zero-initialised memory, page aligned) and `kiln_weights_id` (magic, `hash`, `size`).
/// The reservation is an x86-64 large-data section (.lbss, flag SHF_X86_64_LARGE), which
/// GNU ld, gold and lld all place after .bss: nothing follows it in the image, so code keeps
/// reaching every other symbol by 32-bit offsets however large the weights are (the old
/// .rodata blob capped embedded weights at 1.75 GiB).
std::string weightsReserveAsm(uint64_t size, uint64_t hash);

/// Appends to the linked ELF shared library `so` the section KILN_WEIGHTS_SECTION: its file
/// offset KILN_WEIGHTS_ALIGN-aligned, the `id.size` bytes that `writeBytes` writes, then `id`
/// as the trailer; the section names and headers are written anew after it. False on a
/// write error (errno says why), on a file that is not a 64-bit little-endian ELF with
/// section headers (errno EINVAL), or when writeBytes wrote another count (EINVAL: a kiln bug).
bool appendWeightsSection(const std::filesystem::path &so, const kiln_weights_id_v1 &id,
                          const std::function<bool(std::FILE *)> &writeBytes);

} // namespace kiln::aot
