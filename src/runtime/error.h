// Thread-local last-error message behind kiln_last_error().
#pragma once

#include <kiln/model.h>

namespace kiln::rt {

// Replaces the calling thread's last error with a printf-style message.
void setError(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// Records a message and returns status, so callers can `return fail(...)`.
int fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Empties the calling thread's last error.
void clearError();

// The calling thread's message buffer ("" when there is no error).
const char *lastError();

} // namespace kiln::rt
