// Memory for packed weights that live as long as their constant set (oneDNN-reordered GEMM
// and conv weights, the Q/K/V concatenation). A GEMM reads its packed weights once per call,
// streamed from DRAM in a model too large for the caches; on 4 KiB pages that stream walks
// the page tables every 4 KiB. Buffers of 2 MiB and more are therefore carved, back to back,
// out of 2 MiB-aligned regions advised MADV_HUGEPAGE, so the kernel backs them with
// transparent huge pages where it allows (THP "always" or "madvise"; with "never" they are
// plain pages). Back to back, no buffer ends in a partial huge page of its own: with one
// mapping per buffer (until session 17) the last partial 2 MiB of each stayed on small pages,
// 15% of BERT-base's packed bytes, and its GEMMs ran 3.5-4% slower on Zen 5 (docs/perf.md).
// A region is unmapped when its last buffer goes; a freed buffer's pages are returned at once
// (MADV_DONTNEED), so a weight swap does not keep the old set resident. KILN_HUGE_PAGES=0
// turns all this off (for comparisons).
#pragma once

#include <dnnl.hpp>

#include <cstddef>
#include <memory>

namespace kiln::rt {

// Whether large weight buffers go on huge pages (KILN_HUGE_PAGES, read once).
bool hugeWeightPagesEnabled();

// A zero-filled buffer of `bytes` for weights: in a huge-page region (page-aligned) when at
// least 2 MiB and enabled, else an ordinary 64-byte-aligned allocation. Freed when the
// last owner goes. Throws std::bad_alloc when the memory is not there.
std::shared_ptr<void> allocateWeightBuffer(size_t bytes);

// A oneDNN memory of `desc` on a fresh weight buffer, which `owner` then keeps alive.
dnnl::memory weightMemory(const dnnl::memory::desc &desc, const dnnl::engine &engine,
                          std::shared_ptr<void> &owner);

} // namespace kiln::rt
