// kiln_shim_image_decode_v1 on images built here byte by byte (the node suite covers a JPEG,
// a PNG, a BMP and a PNM photo): BMP row order and padding, PNM gray with maxval < 255, the
// BGR and grayscale outputs, and the errors (too large, unknown format, corrupt data).
#include <kiln/model.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

void put32(std::vector<uint8_t> &b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

/// A 24-bit bottom-up BMP of `rgb` (height rows of width R, G, B, top row first).
std::vector<uint8_t> bmp24(const std::vector<uint8_t> &rgb, uint32_t w, uint32_t h) {
  size_t stride = (w * 3 + 3) / 4 * 4;
  std::vector<uint8_t> b(54 + stride * h, 0);
  b[0] = 'B';
  b[1] = 'M';
  put32(b, 2, static_cast<uint32_t>(b.size()));
  put32(b, 10, 54);
  put32(b, 14, 40);
  put32(b, 18, w);
  put32(b, 22, h);
  b[26] = 1;
  b[28] = 24;
  for (uint32_t r = 0; r < h; ++r)
    for (uint32_t c = 0; c < w; ++c)
      for (int k = 0; k < 3; ++k) // rows stored bottom first, pixels as B, G, R
        b[54 + (h - 1 - r) * stride + c * 3 + k] = rgb[(r * w + c) * 3 + (2 - k)];
  return b;
}

class ImageShim : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_EQ(kiln_rt_runner_create(&ctx_), KILN_OK); }
  void TearDown() override { kiln_rt_runner_destroy(ctx_); }
  int decode(const std::vector<uint8_t> &data, int format, int64_t maxSide,
             std::vector<uint8_t> &out, int64_t &h, int64_t &w) {
    out.assign(maxSide * maxSide * 3, 0xee);
    int st = kiln_shim_image_decode_v1(ctx_, 0, data.data(), (int64_t)data.size(), format, maxSide,
                                       maxSide, out.data(), &h, &w);
    if (st == KILN_OK) out.resize(h * w * (format == 2 ? 1 : 3));
    return st;
  }
  void *ctx_ = nullptr;
};

// 3 x 2 pixels: rows of 9 bytes, padded to 12 in the file.
const std::vector<uint8_t> kRgb = {255, 0,  0,  0,   255, 0,  0,   0,   255,
                                   10,  20, 30, 200, 100, 50, 128, 128, 128};

TEST_F(ImageShim, BmpRowsPaddingAndChannelOrders) {
  std::vector<uint8_t> out;
  int64_t h = 0, w = 0;
  ASSERT_EQ(decode(bmp24(kRgb, 3, 2), 0, 8, out, h, w), KILN_OK) << kiln_rt_last_error();
  EXPECT_EQ(h, 2);
  EXPECT_EQ(w, 3);
  EXPECT_EQ(out, kRgb);
  ASSERT_EQ(decode(bmp24(kRgb, 3, 2), 1, 8, out, h, w), KILN_OK);
  std::vector<uint8_t> bgr = kRgb;
  for (size_t p = 0; p < bgr.size(); p += 3)
    std::swap(bgr[p], bgr[p + 2]);
  EXPECT_EQ(out, bgr);
  // (19595 R + 38470 G + 7471 B + 32768) >> 16 per pixel (values from PIL convert("L")).
  ASSERT_EQ(decode(bmp24(kRgb, 3, 2), 2, 8, out, h, w), KILN_OK);
  EXPECT_EQ(out, (std::vector<uint8_t>{76, 150, 29, 18, 124, 128}));
}

TEST_F(ImageShim, PnmGrayScalesMaxval) {
  std::string pgm = "P5\n# comment\n2 1\n15\n";
  std::vector<uint8_t> data(pgm.begin(), pgm.end());
  data.push_back(15);
  data.push_back(7);
  std::vector<uint8_t> out;
  int64_t h = 0, w = 0;
  ASSERT_EQ(decode(data, 0, 4, out, h, w), KILN_OK) << kiln_rt_last_error();
  EXPECT_EQ(out, (std::vector<uint8_t>{255, 255, 255, 119, 119, 119})); // 7 * 255 / 15 = 119
}

TEST_F(ImageShim, ErrorsSayWhatIsWrong) {
  std::vector<uint8_t> out;
  int64_t h = 0, w = 0;
  EXPECT_EQ(decode(bmp24(kRgb, 3, 2), 0, 2, out, h, w), KILN_ERR_SHAPE_MISMATCH);
  EXPECT_NE(std::string(kiln_rt_last_error()).find("the image is 2 x 3"), std::string::npos)
      << kiln_rt_last_error();
  std::vector<uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0};
  EXPECT_EQ(decode(gif, 0, 4, out, h, w), KILN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_rt_last_error()).find("not an image format kiln knows"),
            std::string::npos)
      << kiln_rt_last_error();
  std::vector<uint8_t> tiff = {'I', 'I', '*', 0, 8, 0, 0, 0}; // its first directory is missing
  EXPECT_EQ(decode(tiff, 0, 4, out, h, w), KILN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_rt_last_error()).find("ImageDecoder: TIFF: "), std::string::npos)
      << kiln_rt_last_error();
  std::vector<uint8_t> jpeg = {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F'};
  EXPECT_EQ(decode(jpeg, 0, 4, out, h, w), KILN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_rt_last_error()).find("ImageDecoder: JPEG: "), std::string::npos)
      << kiln_rt_last_error();
  std::vector<uint8_t> truncated = bmp24(kRgb, 3, 2);
  truncated.resize(60);
  EXPECT_EQ(decode(truncated, 0, 4, out, h, w), KILN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_rt_last_error()).find("BMP: pixel data is truncated"),
            std::string::npos);
}

} // namespace
