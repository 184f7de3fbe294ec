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

// Formats read through their libraries (image_codecs_more.cpp); same contract as below.
std::string decodeTiff(const uint8_t *data, size_t n, RgbImage &out);
std::string decodeWebp(const uint8_t *data, size_t n, RgbImage &out);
std::string decodeJpeg2000(const uint8_t *data, size_t n, bool codestream, RgbImage &out);

/// Decodes JPEG, PNG, BMP, PNM, TIFF, WebP or JPEG 2000 by its magic bytes. Returns an empty
/// string, or what is wrong (the format is unsupported, the data corrupt).
std::string decodeImage(const uint8_t *data, size_t n, RgbImage &out);

} // namespace kiln::rt
