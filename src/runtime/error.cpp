// Thread-local last-error message. A fixed buffer per thread, so recording an error never
// allocates (and never fails) even when the error is an out-of-memory condition.
#include "error.h"

#include <kiln/runtime.h>

#include <cstdarg>
#include <cstdio>

namespace kiln::rt {
namespace {

constexpr size_t kMaxMessage = 1024;
thread_local char gMessage[kMaxMessage];

void setErrorV(const char *fmt, va_list args) {
  std::vsnprintf(gMessage, kMaxMessage, fmt, args);
}

} // namespace

void setError(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  setErrorV(fmt, args);
  va_end(args);
}

int fail(int status, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  setErrorV(fmt, args);
  va_end(args);
  return status;
}

void clearError() {
  gMessage[0] = '\0';
}

const char *lastError() {
  return gMessage;
}

} // namespace kiln::rt

extern "C" {

KILN_RT_API void kiln_rt_set_error(const char *fmt, ...) {
  if (!fmt) {
    kiln::rt::clearError();
    return;
  }
  va_list args;
  va_start(args, fmt);
  kiln::rt::setErrorV(fmt, args);
  va_end(args);
}

KILN_RT_API const char *kiln_rt_last_error(void) {
  return kiln::rt::lastError();
}

} // extern "C"
