// Image readers behind kiln_shim_image_decode_v1: JPEG through libjpeg, PNG through libpng's
// simplified API, the uncompressed BMP and binary PNM layouts parsed here, and the dispatch by
// magic bytes (TIFF, WebP, JPEG 2000: image_codecs_more.cpp). Each yields 8-bit RGB,
// row-major, top row first.
#include "image_codecs.h"

#include <jpeglib.h>
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>

namespace kiln::rt {
namespace {

bool startsWith(const uint8_t *d, size_t n, const char *magic, size_t len) {
  return n >= len && std::memcmp(d, magic, len) == 0;
}

// ---- JPEG ---------------------------------------------------------------------------------

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpegErrorExit(j_common_ptr cinfo) {
  auto *e = reinterpret_cast<JpegError *>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// No C++ object is created between setjmp and a longjmp out of libjpeg (their destructors
// would be skipped); `out` exists before and is only resized.
std::string decodeJpeg(const uint8_t *data, size_t n, RgbImage &out) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpegErrorExit;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return std::string("JPEG: ") + err.message;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(n));
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.num_components != 1 && cinfo.num_components != 3) {
    jpeg_destroy_decompress(&cinfo);
    return "JPEG with " + std::to_string(cinfo.num_components) +
           " components (CMYK/YCCK) is not supported";
  }
  cinfo.out_color_space = JCS_RGB; // grayscale JPEGs come out with Y in every channel
  jpeg_start_decompress(&cinfo);
  out.width = cinfo.output_width;
  out.height = cinfo.output_height;
  out.pixels.resize(out.width * out.height * 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out.pixels.data() + static_cast<size_t>(cinfo.output_scanline) * out.width * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return {};
}

// ---- PNG ----------------------------------------------------------------------------------

std::string decodePng(const uint8_t *data, size_t n, RgbImage &out) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, data, n)) return std::string("PNG: ") + img.message;
  if (img.format & PNG_FORMAT_FLAG_LINEAR) { // 16-bit samples
    png_image_free(&img);
    return "PNG with 16-bit samples is not supported";
  }
  // RGBA then drop alpha, as PIL's convert("RGB") does (no compositing).
  img.format = PNG_FORMAT_RGBA;
  std::vector<uint8_t> rgba(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, rgba.data(), 0, nullptr))
    return std::string("PNG: ") + img.message;
  out.width = img.width;
  out.height = img.height;
  out.pixels.resize(out.width * out.height * 3);
  for (size_t p = 0; p < out.width * out.height; ++p)
    std::memcpy(&out.pixels[p * 3], &rgba[p * 4], 3);
  return {};
}

// ---- BMP (BITMAPINFOHEADER or later, uncompressed 24/32-bit) ------------------------------

uint32_t le32(const uint8_t *p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

std::string decodeBmp(const uint8_t *d, size_t n, RgbImage &out) {
  if (n < 54 || le32(d + 14) < 40) return "BMP: header is truncated or not BITMAPINFOHEADER";
  uint32_t offset = le32(d + 10);
  auto w = static_cast<int32_t>(le32(d + 18)), h = static_cast<int32_t>(le32(d + 22));
  unsigned bpp = d[28] | (d[29] << 8);
  uint32_t compression = le32(d + 30);
  if ((bpp != 24 && bpp != 32) || compression != 0)
    return "BMP with " + std::to_string(bpp) + "-bit pixels, compression " +
           std::to_string(compression) + " is not supported (only uncompressed 24/32-bit)";
  bool topDown = h < 0;
  int64_t absH = topDown ? -static_cast<int64_t>(h) : h;
  if (w <= 0 || absH <= 0) return "BMP: non-positive width or height";
  size_t stride = ((static_cast<size_t>(w) * bpp + 31) / 32) * 4;
  if (offset > n || (n - offset) / stride < static_cast<size_t>(absH))
    return "BMP: pixel data is truncated";
  out.width = static_cast<size_t>(w);
  out.height = static_cast<size_t>(absH);
  out.pixels.resize(out.width * out.height * 3);
  for (size_t r = 0; r < out.height; ++r) {
    const uint8_t *src = d + offset + (topDown ? r : out.height - 1 - r) * stride;
    for (size_t c = 0; c < out.width; ++c, src += bpp / 8) { // stored B, G, R
      uint8_t *px = &out.pixels[(r * out.width + c) * 3];
      px[0] = src[2];
      px[1] = src[1];
      px[2] = src[0];
    }
  }
  return {};
}

// ---- PNM (binary P5 gray / P6 RGB, maxval <= 255) ------------------------------------------

std::string decodePnm(const uint8_t *d, size_t n, RgbImage &out) {
  size_t pos = 2;
  auto number = [&](int64_t &v) {
    for (;;) { // whitespace and # comments before each header number
      while (pos < n && std::strchr(" \t\r\n", d[pos]))
        ++pos;
      if (pos < n && d[pos] == '#') {
        while (pos < n && d[pos] != '\n')
          ++pos;
        continue;
      }
      break;
    }
    if (pos >= n || d[pos] < '0' || d[pos] > '9') return false;
    v = 0;
    while (pos < n && d[pos] >= '0' && d[pos] <= '9' && v < (int64_t(1) << 32))
      v = v * 10 + (d[pos++] - '0');
    return true;
  };
  int64_t w = 0, h = 0, maxval = 0;
  if (!number(w) || !number(h) || !number(maxval) || pos >= n) return "PNM: malformed header";
  ++pos; // the one whitespace byte before the pixels
  if (w <= 0 || h <= 0 || maxval <= 0 || maxval > 255)
    return "PNM: width, height or maxval (" + std::to_string(maxval) + ") is not supported";
  bool rgb = d[1] == '6';
  size_t channels = rgb ? 3 : 1;
  if ((n - pos) / channels / static_cast<size_t>(w) < static_cast<size_t>(h))
    return "PNM: pixel data is truncated";
  out.width = static_cast<size_t>(w);
  out.height = static_cast<size_t>(h);
  out.pixels.resize(out.width * out.height * 3);
  for (size_t p = 0; p < out.width * out.height; ++p)
    for (size_t c = 0; c < 3; ++c) {
      unsigned v = d[pos + p * channels + (rgb ? c : 0)];
      out.pixels[p * 3 + c] =
          static_cast<uint8_t>(maxval == 255 ? v : (v * 255 + maxval / 2) / maxval);
    }
  return {};
}

} // namespace

std::string decodeImage(const uint8_t *data, size_t n, RgbImage &out) {
  if (startsWith(data, n, "\xff\xd8\xff", 3)) return decodeJpeg(data, n, out);
  if (startsWith(data, n, "\x89PNG\r\n\x1a\n", 8)) return decodePng(data, n, out);
  if (startsWith(data, n, "BM", 2)) return decodeBmp(data, n, out);
  if (startsWith(data, n, "P5", 2) || startsWith(data, n, "P6", 2)) return decodePnm(data, n, out);
  if (startsWith(data, n, "II*\0", 4) || startsWith(data, n, "MM\0*", 4))
    return decodeTiff(data, n, out);
  if (startsWith(data, n, "RIFF", 4) && n >= 12 && std::memcmp(data + 8, "WEBP", 4) == 0)
    return decodeWebp(data, n, out);
  if (startsWith(data, n, "\0\0\0\x0cjP  ", 8)) return decodeJpeg2000(data, n, false, out);
  if (startsWith(data, n, "\xff\x4f\xff\x51", 4)) return decodeJpeg2000(data, n, true, out);
  return "the data is not an image format kiln knows (JPEG, PNG, BMP, PNM, TIFF, WebP, JPEG 2000)";
}

} // namespace kiln::rt
