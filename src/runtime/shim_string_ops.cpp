// Level-6 string shims that produce text: StringConcat and StringSplit. Each call takes one
// arena block for all the text it produces (the arena aligns every block to 64 bytes, so a
// block per string would waste most of it on short strings).
#include "error.h"
#include "runner.h"

#include <kiln/model.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace kiln::rt {
namespace {

const char *orEmpty(const char *s) {
  return s ? s : "";
}

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

struct Piece {
  const char *begin;
  size_t size;
};

/// Python's s.split(delimiter, maxsplit) for a non-empty delimiter.
void splitAtDelimiter(const char *s, const char *delim, int64_t maxsplit, std::vector<Piece> &out) {
  size_t dlen = std::strlen(delim);
  const char *start = s;
  for (int64_t splits = 0; maxsplit < 0 || splits < maxsplit; ++splits) {
    const char *hit = std::strstr(start, delim);
    if (!hit) break;
    out.push_back({start, static_cast<size_t>(hit - start)});
    start = hit + dlen;
  }
  out.push_back({start, std::strlen(start)});
}

/// Python's s.split(None, maxsplit): runs of whitespace separate pieces, no empty pieces;
/// after maxsplit splits the rest (leading whitespace skipped) is the last piece as is.
void splitAtWhitespace(const char *s, int64_t maxsplit, std::vector<Piece> &out) {
  const char *p = s;
  for (int64_t splits = 0;; ++splits) {
    while (*p && isSpace(*p))
      ++p;
    if (!*p) return;
    if (maxsplit >= 0 && splits == maxsplit) {
      out.push_back({p, std::strlen(p)});
      return;
    }
    const char *begin = p;
    while (*p && !isSpace(*p))
      ++p;
    out.push_back({begin, static_cast<size_t>(p - begin)});
  }
}

} // namespace
} // namespace kiln::rt

using namespace kiln::rt;

extern "C" {

KILN_RT_API int kiln_shim_string_concat_v1(kiln_shim_ctx *ctx, int64_t, const char *const *a,
                                           const char *const *b, int64_t n, const char **y) {
  const char *fn = "kiln_shim_string_concat_v1";
  if (!ctx || n < 0 || (n > 0 && (!a || !b || !y)))
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL or negative argument", fn);
  auto *r = static_cast<Runner *>(ctx);
  size_t total = 0;
  for (int64_t i = 0; i < n; ++i)
    total += std::strlen(orEmpty(a[i])) + std::strlen(orEmpty(b[i])) + 1;
  auto *text = static_cast<char *>(r->arena.alloc(total));
  if (!text) return fail(KILN_ERR_OUT_OF_MEMORY, "%s: no memory for %zu bytes", fn, total);
  for (int64_t i = 0; i < n; ++i) {
    size_t la = std::strlen(orEmpty(a[i])), lb = std::strlen(orEmpty(b[i]));
    std::memcpy(text, orEmpty(a[i]), la);
    std::memcpy(text + la, orEmpty(b[i]), lb);
    text[la + lb] = '\0';
    y[i] = text;
    text += la + lb + 1;
  }
  return KILN_OK;
}

KILN_RT_API int kiln_shim_string_split_v1(kiln_shim_ctx *ctx, int64_t, const char *const *x,
                                          int64_t n, const char *delimiter, int64_t maxsplit,
                                          int64_t room, const char **y, int64_t *lengths,
                                          int64_t *count) {
  const char *fn = "kiln_shim_string_split_v1";
  if (!ctx || !count || n < 0 || room < 0 || (n > 0 && (!x || !lengths || (room > 0 && !y))))
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL or negative argument", fn);
  auto *r = static_cast<Runner *>(ctx);
  bool whitespace = !delimiter || !*delimiter;
  // First pass: the pieces of every string (pointers into the input), so K is known before
  // any row is written and nothing is written when a string has more pieces than room.
  std::vector<Piece> pieces;
  std::vector<size_t> firstPiece(static_cast<size_t>(n) + 1, 0);
  int64_t most = 0;
  size_t textBytes = 0;
  for (int64_t i = 0; i < n; ++i) {
    const char *s = orEmpty(x[i]);
    if (whitespace)
      splitAtWhitespace(s, maxsplit, pieces);
    else
      splitAtDelimiter(s, delimiter, maxsplit, pieces);
    firstPiece[i + 1] = pieces.size();
    auto k = static_cast<int64_t>(pieces.size() - firstPiece[i]);
    if (k > room)
      return fail(KILN_ERR_SHAPE_MISMATCH,
                  "StringSplit: string %lld (\"%.40s\") splits into %lld pieces; kiln sized the "
                  "output for at most %lld per string (set the node's maxsplit attribute to "
                  "bound it)",
                  static_cast<long long>(i), s, static_cast<long long>(k),
                  static_cast<long long>(room));
    most = std::max(most, k);
    lengths[i] = k;
  }
  for (const Piece &p : pieces)
    textBytes += p.size + 1;
  auto *text = static_cast<char *>(r->arena.alloc(textBytes + 1));
  if (!text) return fail(KILN_ERR_OUT_OF_MEMORY, "%s: no memory for %zu bytes", fn, textBytes);
  char *empty = text + textBytes; // the padding pieces all point at one ""
  *empty = '\0';
  for (int64_t i = 0; i < n; ++i) {
    int64_t j = 0;
    for (size_t p = firstPiece[i]; p < firstPiece[i + 1]; ++p, ++j) {
      std::memcpy(text, pieces[p].begin, pieces[p].size);
      text[pieces[p].size] = '\0';
      y[i * most + j] = text;
      text += pieces[p].size + 1;
    }
    for (; j < most; ++j)
      y[i * most + j] = empty;
  }
  *count = most;
  return KILN_OK;
}

} // extern "C"
