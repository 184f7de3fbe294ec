// ImageDecoder formats read through their Debian libraries' memory interfaces: TIFF (libtiff,
// any layout it turns into RGBA), WebP (libwebp) and JPEG 2000 (OpenJPEG: 8-bit gray or RGB
// components at full resolution). Errors are collected per call, never printed.
#include "image_codecs.h"

#include <openjpeg.h>
#include <tiffio.h>
#include <webp/decode.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace kiln::rt {
namespace {

// ---- TIFF ---------------------------------------------------------------------------------

struct MemoryFile {
  const uint8_t *data;
  toff_t size, pos;
  char error[256];
};

tmsize_t memRead(thandle_t h, void *buf, tmsize_t n) {
  auto *m = static_cast<MemoryFile *>(h);
  toff_t left = m->pos < m->size ? m->size - m->pos : 0;
  auto k = static_cast<toff_t>(std::max<tmsize_t>(n, 0));
  k = std::min(k, left);
  std::memcpy(buf, m->data + m->pos, k);
  m->pos += k;
  return static_cast<tmsize_t>(k);
}
tmsize_t memWrite(thandle_t, void *, tmsize_t) {
  return 0;
}
toff_t memSeek(thandle_t h, toff_t off, int whence) {
  auto *m = static_cast<MemoryFile *>(h);
  toff_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->size;
  m->pos = base + off;
  return m->pos;
}
int memClose(thandle_t) {
  return 0;
}
toff_t memSize(thandle_t h) {
  return static_cast<MemoryFile *>(h)->size;
}
int memMap(thandle_t, void **, toff_t *) {
  return 0;
}
void memUnmap(thandle_t, void *, toff_t) {}

int tiffError(TIFF *, void *user, const char *module, const char *fmt, va_list ap) {
  auto *m = static_cast<MemoryFile *>(user);
  if (!m->error[0]) std::vsnprintf(m->error, sizeof m->error, fmt, ap);
  return 1; // handled: libtiff prints nothing
}
int tiffWarning(TIFF *, void *, const char *, const char *, va_list) {
  return 1;
}

} // namespace

std::string decodeTiff(const uint8_t *data, size_t n, RgbImage &out) {
  MemoryFile m{data, n, 0, {}};
  TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(opts, tiffError, &m);
  TIFFOpenOptionsSetWarningHandlerExtR(opts, tiffWarning, &m);
  TIFF *t = TIFFClientOpenExt("memory", "rm", &m, memRead, memWrite, memSeek, memClose, memSize,
                              memMap, memUnmap, opts);
  TIFFOpenOptionsFree(opts);
  if (!t) return std::string("TIFF: ") + (m.error[0] ? m.error : "cannot be opened");
  uint32_t w = 0, h = 0;
  TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w);
  TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h);
  std::vector<uint32_t> raster(static_cast<size_t>(w) * h);
  bool ok =
      w > 0 && h > 0 && TIFFReadRGBAImageOriented(t, w, h, raster.data(), ORIENTATION_TOPLEFT, 0);
  TIFFClose(t);
  if (!ok) return std::string("TIFF: ") + (m.error[0] ? m.error : "cannot be decoded");
  out.width = w;
  out.height = h;
  out.pixels.resize(raster.size() * 3);
  for (size_t p = 0; p < raster.size(); ++p) {
    out.pixels[p * 3] = static_cast<uint8_t>(TIFFGetR(raster[p]));
    out.pixels[p * 3 + 1] = static_cast<uint8_t>(TIFFGetG(raster[p]));
    out.pixels[p * 3 + 2] = static_cast<uint8_t>(TIFFGetB(raster[p]));
  }
  return {};
}

// ---- WebP ---------------------------------------------------------------------------------

std::string decodeWebp(const uint8_t *data, size_t n, RgbImage &out) {
  int w = 0, h = 0;
  uint8_t *rgb = WebPDecodeRGB(data, n, &w, &h); // alpha, if any, is dropped
  if (!rgb) return "WebP: the data does not decode";
  out.width = static_cast<size_t>(w);
  out.height = static_cast<size_t>(h);
  out.pixels.assign(rgb, rgb + out.width * out.height * 3);
  WebPFree(rgb);
  return {};
}

// ---- JPEG 2000 ----------------------------------------------------------------------------

namespace {

struct Jp2Stream {
  const uint8_t *data;
  OPJ_SIZE_T size, pos;
  char error[256];
};

OPJ_SIZE_T jp2Read(void *buf, OPJ_SIZE_T n, void *user) {
  auto *s = static_cast<Jp2Stream *>(user);
  if (s->pos >= s->size) return static_cast<OPJ_SIZE_T>(-1);
  OPJ_SIZE_T k = std::min(n, s->size - s->pos);
  std::memcpy(buf, s->data + s->pos, k);
  s->pos += k;
  return k;
}
OPJ_OFF_T jp2Skip(OPJ_OFF_T n, void *user) {
  auto *s = static_cast<Jp2Stream *>(user);
  OPJ_OFF_T k = std::min<OPJ_OFF_T>(n, static_cast<OPJ_OFF_T>(s->size - s->pos));
  s->pos += static_cast<OPJ_SIZE_T>(k);
  return k;
}
OPJ_BOOL jp2Seek(OPJ_OFF_T to, void *user) {
  auto *s = static_cast<Jp2Stream *>(user);
  if (to < 0 || static_cast<OPJ_SIZE_T>(to) > s->size) return OPJ_FALSE;
  s->pos = static_cast<OPJ_SIZE_T>(to);
  return OPJ_TRUE;
}
void jp2Error(const char *msg, void *user) {
  auto *s = static_cast<Jp2Stream *>(user);
  if (!s->error[0]) std::snprintf(s->error, sizeof s->error, "%s", msg);
}
void jp2Quiet(const char *, void *) {}

/// Checks the decoded components and copies them as 8-bit RGB; empty, or what is unsupported.
std::string jp2Pixels(const opj_image_t *img, RgbImage &out) {
  OPJ_UINT32 nc = img->numcomps;
  if (nc != 1 && nc != 3 && nc != 4)
    return "JPEG 2000 with " + std::to_string(nc) + " components is not supported";
  if (img->color_space == OPJ_CLRSPC_SYCC || img->color_space == OPJ_CLRSPC_CMYK ||
      img->color_space == OPJ_CLRSPC_EYCC)
    return "JPEG 2000 in a YCC/CMYK colour space is not supported";
  const opj_image_comp_t &c0 = img->comps[0];
  for (OPJ_UINT32 c = 0; c < nc; ++c) {
    const opj_image_comp_t &ci = img->comps[c];
    if (ci.w != c0.w || ci.h != c0.h || ci.dx != 1 || ci.dy != 1 || ci.prec != 8 || ci.sgnd)
      return "JPEG 2000 with subsampled, signed or non-8-bit components is not supported";
  }
  out.width = c0.w;
  out.height = c0.h;
  out.pixels.resize(out.width * out.height * 3);
  for (size_t p = 0; p < out.width * out.height; ++p)
    for (int k = 0; k < 3; ++k)
      out.pixels[p * 3 + k] = static_cast<uint8_t>(img->comps[nc == 1 ? 0 : k].data[p]);
  return {};
}

} // namespace

std::string decodeJpeg2000(const uint8_t *data, size_t n, bool codestream, RgbImage &out) {
  Jp2Stream s{data, n, 0, {}};
  opj_stream_t *stream = opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_TRUE);
  opj_stream_set_user_data(stream, &s, nullptr);
  opj_stream_set_user_data_length(stream, n);
  opj_stream_set_read_function(stream, jp2Read);
  opj_stream_set_skip_function(stream, jp2Skip);
  opj_stream_set_seek_function(stream, jp2Seek);
  opj_codec_t *codec = opj_create_decompress(codestream ? OPJ_CODEC_J2K : OPJ_CODEC_JP2);
  opj_set_error_handler(codec, jp2Error, &s);
  opj_set_warning_handler(codec, jp2Quiet, &s);
  opj_set_info_handler(codec, jp2Quiet, &s);
  opj_dparameters_t params;
  opj_set_default_decoder_parameters(&params);
  opj_image_t *img = nullptr;
  bool ok = opj_setup_decoder(codec, &params) && opj_read_header(stream, codec, &img) &&
            opj_decode(codec, stream, img) && opj_end_decompress(codec, stream);
  std::string why = ok ? jp2Pixels(img, out)
                       : std::string("JPEG 2000: ") + (s.error[0] ? s.error : "cannot be decoded");
  if (img) opj_image_destroy(img);
  opj_destroy_codec(codec);
  opj_stream_destroy(stream);
  return why;
}

} // namespace kiln::rt
