// Level-3 string shims: Cast to and from string, and StringNormalizer. Produced strings
// are allocated in the runner's arena (freed when the run ends; the runtime copies model
// outputs out first), so a run does no per-string mallocs.
#include "error.h"
#include "runner.h"

#include <kiln/model.h>
#include <kiln/prelude.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

namespace kiln::rt {
namespace {

const char *arenaCopy(Runner *r, const char *text, size_t len) {
  auto *p = static_cast<char *>(r->arena.alloc(len + 1));
  std::memcpy(p, text, len);
  p[len] = '\0';
  return p;
}

template <typename T> size_t formatFloat(T v, char *buf, size_t size) {
  if (std::isnan(v)) return std::strlen(std::strcpy(buf, "NaN"));
  if (std::isinf(v)) return std::strlen(std::strcpy(buf, v > 0 ? "INF" : "-INF"));
  auto res = std::to_chars(buf, buf + size, v); // shortest round-trip form
  return static_cast<size_t>(res.ptr - buf);
}

template <typename T> size_t formatInt(T v, char *buf, size_t size) {
  auto res = std::to_chars(buf, buf + size, v);
  return static_cast<size_t>(res.ptr - buf);
}

bool equalsIgnoreCase(const char *a, const char *b) {
  for (; *a && *b; ++a, ++b)
    if (std::tolower(static_cast<unsigned char>(*a)) !=
        std::tolower(static_cast<unsigned char>(*b)))
      return false;
  return *a == *b;
}

bool parseDouble(const char *s, double &out) {
  std::string t(s);
  std::string lower = t;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (lower == "nan" || lower == "+nan" || lower == "-nan") {
    out = std::nan("");
    return true;
  }
  char *end = nullptr;
  out = std::strtod(s, &end); // also reads "inf", "INF", "infinity"
  return end != s && *end == '\0';
}

} // namespace
} // namespace kiln::rt

using namespace kiln::rt;

extern "C" {

KILN_RT_API int kiln_shim_to_string_v1(kiln_shim_ctx *ctx, int64_t, int32_t elem_type,
                                       int32_t elem_size, const void *x, int64_t n,
                                       const char **y) {
  const char *fn = "kiln_shim_to_string_v1";
  if (!ctx || n < 0 || (n > 0 && (!x || !y)))
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL runner, data or output", fn);
  auto *r = static_cast<Runner *>(ctx);
  char buf[64];
  for (int64_t i = 0; i < n; ++i) {
    size_t len = 0;
    switch (elem_type) {
    case KILN_ELEM_F32:
      len = formatFloat(static_cast<const float *>(x)[i], buf, sizeof buf);
      break;
    case KILN_ELEM_F64:
      len = formatFloat(static_cast<const double *>(x)[i], buf, sizeof buf);
      break;
    case KILN_ELEM_F16:
      len = formatFloat(kiln_h2f(static_cast<const uint16_t *>(x)[i]), buf, sizeof buf);
      break;
    case KILN_ELEM_BF16:
      len = formatFloat(kiln_bf2f(static_cast<const uint16_t *>(x)[i]), buf, sizeof buf);
      break;
    case KILN_ELEM_I8:
      len = formatInt(static_cast<const int8_t *>(x)[i], buf, sizeof buf);
      break;
    case KILN_ELEM_I16:
      len = formatInt(static_cast<const int16_t *>(x)[i], buf, sizeof buf);
      break;
    case KILN_ELEM_I32:
      len = formatInt(static_cast<const int32_t *>(x)[i], buf, sizeof buf);
      break;
    case KILN_ELEM_I64:
      len = formatInt(static_cast<const int64_t *>(x)[i], buf, sizeof buf);
      break;
    case KILN_ELEM_U8:
    case KILN_ELEM_BOOL:
      len = formatInt(static_cast<const uint8_t *>(x)[i], buf, sizeof buf);
      break;
    case KILN_ELEM_U16:
      len = formatInt(static_cast<const uint16_t *>(x)[i], buf, sizeof buf);
      break;
    case KILN_ELEM_U32:
      len = formatInt(static_cast<const uint32_t *>(x)[i], buf, sizeof buf);
      break;
    case KILN_ELEM_U64:
      len = formatInt(static_cast<const uint64_t *>(x)[i], buf, sizeof buf);
      break;
    default:
      return fail(KILN_ERR_UNSUPPORTED, "%s: element type %d (size %d) is not supported", fn,
                  elem_type, elem_size);
    }
    y[i] = arenaCopy(r, buf, len);
  }
  return KILN_OK;
}

KILN_RT_API int kiln_shim_from_string_v1(kiln_shim_ctx *, int64_t, const char *const *x, int64_t n,
                                         int32_t elem_type, int32_t elem_size, void *y) {
  const char *fn = "kiln_shim_from_string_v1";
  if (n < 0 || (n > 0 && (!x || !y)))
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL data or output", fn);
  for (int64_t i = 0; i < n; ++i) {
    const char *s = x[i] ? x[i] : "";
    double v = 0;
    if (!parseDouble(s, v))
      return fail(KILN_ERR_INVALID_ARGUMENT,
                  "Cast from string: element %lld (\"%.40s\") is not a "
                  "number",
                  static_cast<long long>(i), s);
    switch (elem_type) {
    case KILN_ELEM_F32:
      static_cast<float *>(y)[i] = static_cast<float>(v);
      break;
    case KILN_ELEM_F64:
      static_cast<double *>(y)[i] = v;
      break;
    case KILN_ELEM_F16:
      static_cast<uint16_t *>(y)[i] = kiln_f2h(static_cast<float>(v));
      break;
    case KILN_ELEM_BF16:
      static_cast<uint16_t *>(y)[i] = kiln_f2bf(static_cast<float>(v));
      break;
    case KILN_ELEM_I8:
      static_cast<int8_t *>(y)[i] = static_cast<int8_t>(v);
      break;
    case KILN_ELEM_I16:
      static_cast<int16_t *>(y)[i] = static_cast<int16_t>(v);
      break;
    case KILN_ELEM_I32:
      static_cast<int32_t *>(y)[i] = static_cast<int32_t>(v);
      break;
    case KILN_ELEM_I64:
      static_cast<int64_t *>(y)[i] = std::strtoll(s, nullptr, 10);
      break;
    case KILN_ELEM_U8:
      static_cast<uint8_t *>(y)[i] = static_cast<uint8_t>(v);
      break;
    case KILN_ELEM_BOOL:
      static_cast<uint8_t *>(y)[i] = v != 0;
      break;
    case KILN_ELEM_U16:
      static_cast<uint16_t *>(y)[i] = static_cast<uint16_t>(v);
      break;
    case KILN_ELEM_U32:
      static_cast<uint32_t *>(y)[i] = static_cast<uint32_t>(v);
      break;
    case KILN_ELEM_U64:
      static_cast<uint64_t *>(y)[i] = std::strtoull(s, nullptr, 10);
      break;
    default:
      return fail(KILN_ERR_UNSUPPORTED, "%s: element type %d (size %d) is not supported", fn,
                  elem_type, elem_size);
    }
  }
  return KILN_OK;
}

KILN_RT_API int kiln_shim_string_normalizer_v1(kiln_shim_ctx *ctx, int64_t, const char *const *x,
                                               int64_t n, int32_t case_action,
                                               int32_t case_sensitive, const char *const *stopwords,
                                               int64_t num_stopwords, const char **y,
                                               int64_t *count) {
  const char *fn = "kiln_shim_string_normalizer_v1";
  if (!ctx || !count || !y || n < 0 || (n > 0 && !x) || (num_stopwords > 0 && !stopwords))
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
  if (case_action < 0 || case_action > 2)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: case_action %d is not 0, 1 or 2", fn, case_action);
  auto *r = static_cast<Runner *>(ctx);
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const char *s = x[i] ? x[i] : "";
    bool stop = false;
    for (int64_t k = 0; k < num_stopwords && !stop; ++k)
      stop = case_sensitive ? std::strcmp(s, stopwords[k]) == 0 : equalsIgnoreCase(s, stopwords[k]);
    if (stop) continue;
    size_t len = std::strlen(s);
    auto *out = const_cast<char *>(arenaCopy(r, s, len));
    for (size_t j = 0; j < len; ++j) {
      auto ch = static_cast<unsigned char>(out[j]);
      if (case_action == 1) out[j] = static_cast<char>(std::tolower(ch));
      if (case_action == 2) out[j] = static_cast<char>(std::toupper(ch));
    }
    y[kept++] = out;
  }
  if (kept == 0) y[kept++] = arenaCopy(r, "", 0);
  *count = kept;
  return KILN_OK;
}

KILN_RT_API int kiln_shim_string_lookup_v1(kiln_shim_ctx *ctx, int64_t, const char *const *x,
                                           int64_t n, const char *const *keys, int64_t num_keys,
                                           int64_t *index) {
  const char *fn = "kiln_shim_string_lookup_v1";
  if (!ctx || n < 0 || num_keys < 0 || (n > 0 && (!x || !index)) || (num_keys > 0 && !keys))
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL or negative argument", fn);
  for (int64_t i = 0; i < n; ++i) {
    const char *s = x[i] ? x[i] : "";
    index[i] = -1;
    for (int64_t k = 0; k < num_keys; ++k)
      if (std::strcmp(s, keys[k]) == 0) {
        index[i] = k;
        break;
      }
  }
  return KILN_OK;
}

} // extern "C"
