// Two kinds of error (DESIGN.md): a user's bad model or input is a UserError with a
// precise message; a broken invariant of ours is an internal assertion with context.
#pragma once

#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace kiln {

/// A problem with the user's model or input; the message names what was expected.
class UserError : public std::runtime_error {
public:
  explicit UserError(const std::string &msg) : std::runtime_error(msg) {}
};

/// A broken invariant inside kiln: a bug to report.
class InternalError : public std::logic_error {
public:
  explicit InternalError(const std::string &msg) : std::logic_error(msg) {}
};

template <typename... Args> [[noreturn]] void fail(fmt::format_string<Args...> f, Args &&...args) {
  throw UserError(fmt::format(f, std::forward<Args>(args)...));
}

[[noreturn]] inline void internalFail(const char *file, int line, const std::string &msg) {
  throw InternalError(fmt::format("kiln internal error at {}:{}: {}", file, line, msg));
}

} // namespace kiln

#define KILN_ASSERT(cond, ...)                                                                     \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      ::kiln::internalFail(__FILE__, __LINE__,                                                     \
                           std::string(#cond ": ") + fmt::format(__VA_ARGS__));                    \
  } while (0)
