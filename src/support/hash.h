// Content hashing for the compile cache (FNV-1a 64: fast, stable across runs/builds).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kiln {

inline uint64_t fnv1a(std::string_view data, uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

inline std::string hexHash(uint64_t h) {
  static const char *digits = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4)
    s[i] = digits[h & 15];
  return s;
}

} // namespace kiln
