#include "arena.h"

#include <algorithm>
#include <cstdlib>

namespace kiln::rt {
namespace {

constexpr size_t kMinChunk = size_t(1) << 20;

size_t roundUp(size_t n, size_t a) {
  return (n + a - 1) / a * a;
}

} // namespace

Arena::~Arena() {
  freeChunks();
}

size_t Arena::capacity() const {
  size_t total = 0;
  for (const Chunk &c : chunks_)
    total += c.size;
  return total;
}

void Arena::freeChunks() {
  for (Chunk &c : chunks_)
    std::free(c.data);
  chunks_.clear();
}

bool Arena::addChunk(size_t minSize) {
  // Double the capacity so a run that outgrows the arena needs few new chunks.
  size_t size = roundUp(std::max({minSize, kMinChunk, capacity()}), kAlign);
  void *p = std::aligned_alloc(kAlign, size);
  if (!p) return false;
  chunks_.reserve(8);
  chunks_.push_back({static_cast<char *>(p), size, 0});
  return true;
}

void *Arena::alloc(size_t nbytes) {
  size_t need = roundUp(nbytes == 0 ? 1 : nbytes, kAlign);
  if (chunks_.empty() || chunks_.back().size - chunks_.back().offset < need) {
    if (!addChunk(need)) return nullptr;
  }
  Chunk &c = chunks_.back();
  void *p = c.data + c.offset;
  c.offset += need;
  used_ += need;
  return p;
}

void Arena::reset() {
  if (chunks_.size() > 1) {
    // Coalesce: the next run of the same shape then fits in one chunk.
    size_t total = capacity();
    freeChunks();
    addChunk(total);
  }
  for (Chunk &c : chunks_)
    c.offset = 0;
  used_ = 0;
}

} // namespace kiln::rt
