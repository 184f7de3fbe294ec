// The bytes of a compile-time tensor: owned, or a read-only view into a mapped model file.
// A view lets a large model's weights go from the file to the output without being copied
// into fresh memory (which, on some virtual machines, costs seconds of page faults per GB).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace kiln::ir {

class ByteBuffer {
public:
  ByteBuffer() = default;
  /// `size` bytes at `data`, kept valid by `owner` (e.g. the model file's mapping); any
  /// alignment.
  static ByteBuffer view(std::shared_ptr<const void> owner, const uint8_t *data, size_t size);

  size_t size() const { return view_ ? viewSize_ : own_.size(); }
  bool empty() const { return size() == 0; }
  bool isView() const { return view_ != nullptr; }

  /// The bytes, aligned like malloc's memory (typed access through them is defined). A view
  /// whose bytes are not aligned is copied on first use (once; not thread-safe, like the
  /// rest of the IR).
  const uint8_t *data() const;
  /// Writable bytes: a view becomes an owned copy first.
  uint8_t *data();
  /// The bytes where they lie, any alignment: for byte-wise readers (hashing, writing out),
  /// which then never copy a view.
  const uint8_t *unalignedData() const { return view_ ? view_ : own_.data(); }

  const uint8_t *begin() const { return unalignedData(); }
  const uint8_t *end() const { return unalignedData() + size(); }
  uint8_t operator[](size_t i) const { return unalignedData()[i]; }
  uint8_t &operator[](size_t i) { return data()[i]; }

  void resize(size_t n, uint8_t fill = 0);
  void assign(size_t n, uint8_t value);
  void assign(const uint8_t *first, const uint8_t *last);
  void clear();
  /// The owned bytes as a vector (a view is copied).
  std::vector<uint8_t> &vector();

private:
  void materialize() const;

  mutable std::vector<uint8_t> own_;
  mutable std::shared_ptr<const void> owner_;
  mutable const uint8_t *view_ = nullptr;
  size_t viewSize_ = 0;
};

} // namespace kiln::ir
