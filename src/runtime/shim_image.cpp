// Level-6 ImageDecoder: decodes one encoded image (image_codecs.cpp) and writes it as uint8
// [height, width, channels] in RGB, BGR or PIL's grayscale; height and width are the late
// symbols the generated code passes, bounded by the room the output was sized for.
#include "error.h"
#include "image_codecs.h"

#include <kiln/model.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

using namespace kiln::rt;

extern "C" {

KILN_RT_API int kiln_shim_image_decode_v1(kiln_shim_ctx *ctx, int64_t, const uint8_t *data,
                                          int64_t n, int32_t pixel_format, int64_t max_height,
                                          int64_t max_width, uint8_t *y, int64_t *height,
                                          int64_t *width) {
  const char *fn = "kiln_shim_image_decode_v1";
  if (!ctx || !y || !height || !width || n < 0 || (n > 0 && !data))
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL or negative argument", fn);
  if (pixel_format < 0 || pixel_format > 2)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: pixel_format %d is not 0, 1 or 2", fn,
                pixel_format);
  RgbImage img;
  std::string why = decodeImage(data, static_cast<size_t>(n), img);
  if (!why.empty()) return fail(KILN_ERR_INVALID_ARGUMENT, "ImageDecoder: %s", why.c_str());
  if (static_cast<int64_t>(img.height) > max_height || static_cast<int64_t>(img.width) > max_width)
    return fail(KILN_ERR_SHAPE_MISMATCH,
                "ImageDecoder: the image is %zu x %zu (height x width); kiln sized the output for "
                "at most %lld x %lld",
                img.height, img.width, static_cast<long long>(max_height),
                static_cast<long long>(max_width));
  size_t count = img.width * img.height;
  const uint8_t *p = img.pixels.data();
  for (size_t i = 0; i < count; ++i, p += 3) {
    if (pixel_format == 2) {
      y[i] = static_cast<uint8_t>((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 0x8000u) >> 16);
      continue;
    }
    bool bgr = pixel_format == 1;
    y[i * 3] = p[bgr ? 2 : 0];
    y[i * 3 + 1] = p[1];
    y[i * 3 + 2] = p[bgr ? 0 : 2];
  }
  *height = static_cast<int64_t>(img.height);
  *width = static_cast<int64_t>(img.width);
  return KILN_OK;
}

} // extern "C"
