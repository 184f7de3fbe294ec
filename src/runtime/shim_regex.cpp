// Level-6 RegexFullMatch through RE2 (linear-time matching, no backtracking blow-up on
// hostile patterns or inputs). A pattern is compiled on a runner's first call at its site and
// kept, so steady-state runs only match.
#include "error.h"
#include "runner.h"

#include <kiln/model.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <re2/re2.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>

namespace kiln::rt {

struct RegexCache {
  // site -> compiled pattern (its pattern() is compared on use: one site, one pattern)
  std::map<int64_t, std::unique_ptr<re2::RE2>> bySite;
};

namespace {

/// The compiled pattern for (runner, site), compiled on first use; nullptr after recording
/// an error when RE2 rejects it.
const re2::RE2 *compiled(Runner &r, int64_t site, const char *pattern) {
  if (!r.regex) r.regex = std::make_shared<RegexCache>();
  std::unique_ptr<re2::RE2> &slot = r.regex->bySite[site];
  if (slot && slot->pattern() == pattern) return slot.get();
  re2::RE2::Options options;
  options.set_log_errors(false); // RE2 would print to stderr; the error goes to the caller
  slot = std::make_unique<re2::RE2>(pattern, options);
  if (slot->ok()) return slot.get();
  fail(KILN_ERR_INVALID_ARGUMENT, "RegexFullMatch: pattern \"%.80s\" is not valid RE2 syntax: %s",
       pattern, slot->error().c_str());
  slot.reset();
  return nullptr;
}

} // namespace
} // namespace kiln::rt

using namespace kiln::rt;

extern "C" {

KILN_RT_API int kiln_shim_regex_full_match_v1(kiln_shim_ctx *ctx, int64_t site, const char *pattern,
                                              const char *const *x, int64_t n, uint8_t *y) {
  const char *fn = "kiln_shim_regex_full_match_v1";
  if (!ctx || !pattern || n < 0 || (n > 0 && (!x || !y)))
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL or negative argument", fn);
  const re2::RE2 *re = compiled(*static_cast<Runner *>(ctx), site, pattern);
  if (!re) return KILN_ERR_INVALID_ARGUMENT;
  for (int64_t i = 0; i < n; ++i) {
    const char *s = x[i] ? x[i] : "";
    y[i] = re2::RE2::FullMatch(re2::StringPiece(s, std::strlen(s)), *re) ? 1 : 0;
  }
  return KILN_OK;
}

} // extern "C"
