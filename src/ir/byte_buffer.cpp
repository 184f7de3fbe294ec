#include "ir/byte_buffer.h"

#include <cstddef>

namespace kiln::ir {

ByteBuffer ByteBuffer::view(std::shared_ptr<const void> owner, const uint8_t *data, size_t size) {
  ByteBuffer b;
  if (size == 0) return b;
  b.owner_ = std::move(owner);
  b.view_ = data;
  b.viewSize_ = size;
  return b;
}

void ByteBuffer::materialize() const {
  if (!view_) return;
  own_.assign(view_, view_ + viewSize_);
  // The owner stays: a pointer taken from unalignedData() before this must stay valid.
  view_ = nullptr;
}

const uint8_t *ByteBuffer::data() const {
  if (view_ && reinterpret_cast<uintptr_t>(view_) % alignof(std::max_align_t) != 0) materialize();
  return view_ ? view_ : own_.data();
}

uint8_t *ByteBuffer::data() {
  materialize();
  return own_.data();
}

void ByteBuffer::resize(size_t n, uint8_t fill) {
  materialize();
  own_.resize(n, fill);
}

void ByteBuffer::assign(size_t n, uint8_t value) {
  view_ = nullptr;
  owner_.reset();
  own_.assign(n, value);
}

void ByteBuffer::assign(const uint8_t *first, const uint8_t *last) {
  std::vector<uint8_t> copy(first, last); // `first` may point into this buffer's view
  view_ = nullptr;
  owner_.reset();
  own_.swap(copy);
}

void ByteBuffer::clear() {
  view_ = nullptr;
  owner_.reset();
  own_.clear();
}

std::vector<uint8_t> &ByteBuffer::vector() {
  materialize();
  return own_;
}

} // namespace kiln::ir
