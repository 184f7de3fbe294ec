// Memory for packed weights that live as long as their constant set (oneDNN-reordered GEMM
// and conv weights, the Q/K/V concatenation). A GEMM reads its packed weights once per call,
// streamed from DRAM in a model too large for the caches; on 4 KiB pages that stream walks
// the page tables every 4 KiB. Buffers of 2 MiB and more are therefore mapped 2 MiB-aligned
// and advised MADV_HUGEPAGE, so the kernel backs them with transparent huge pages where it
// allows (THP "always" or "madvise"; with "never" they are plain pages). The mapping is the
// exact page-rounded size: its last partial 2 MiB stays on small pages, so nothing is
// wasted. KILN_HUGE_PAGES=0 turns this off (for comparisons).
#pragma once

#include <dnnl.hpp>

#include <cstddef>
#include <memory>

namespace kiln::rt {

// Whether large weight buffers go on huge pages (KILN_HUGE_PAGES, read once).
bool hugeWeightPagesEnabled();

// A zero-filled buffer of `bytes` for weights: 2 MiB-aligned and advised MADV_HUGEPAGE when
// at least 2 MiB and enabled, else an ordinary 64-byte-aligned allocation. Freed when the
// last owner goes. Throws std::bad_alloc when the memory is not there.
std::shared_ptr<void> allocateWeightBuffer(size_t bytes);

// A oneDNN memory of `desc` on a fresh weight buffer, which `owner` then keeps alive.
dnnl::memory weightMemory(const dnnl::memory::desc &desc, const dnnl::engine &engine,
                          std::shared_ptr<void> &owner);

} // namespace kiln::rt
