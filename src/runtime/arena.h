// Per-runner scratch arena: a grow-only bump allocator handing out 64-byte aligned blocks
// for one run, released all at once after the run.
#pragma once

#include <cstddef>
#include <vector>

namespace kiln::rt {

class Arena {
public:
  static constexpr size_t kAlign = 64;

  Arena() = default;
  Arena(const Arena &) = delete;
  Arena &operator=(const Arena &) = delete;
  ~Arena();

  // Returns nbytes of 64-byte aligned memory valid until reset(), or nullptr when out of
  // memory. nbytes == 0 yields a valid unique pointer.
  void *alloc(size_t nbytes);

  // Frees every block handed out. If the run needed more than one chunk, the chunks are
  // replaced by one chunk big enough for all of them, so a steady state does no mallocs.
  void reset();

  size_t numChunks() const { return chunks_.size(); }
  size_t capacity() const;
  // Bytes handed out since the last reset (including alignment padding).
  size_t used() const { return used_; }

private:
  struct Chunk {
    char *data;
    size_t size;
    size_t offset;
  };
  bool addChunk(size_t minSize);
  void freeChunks();

  std::vector<Chunk> chunks_;
  size_t used_ = 0;
};

} // namespace kiln::rt
