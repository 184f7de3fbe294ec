// Image readers for ImageDecoder (image_codecs.cpp): the encoded bytes to 8-bit RGB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::rt {

struct RgbImage {
  size_t width = 0, height = 0;
  std::vector<uint8_t> pixels; // height rows of width R, G, B triples, top row first
};

/// Decodes JPEG, PNG, BMP or PNM by its magic bytes. Returns an empty string, or what is
/// wrong (the format is unsupported, the data corrupt).
std::string decodeImage(const uint8_t *data, size_t n, RgbImage &out);

} // namespace kiln::rt
