// A kiln status and its message, thrown by the extension and raised in Python as the
// kiln.errors class for that status (see module.cpp's translator).
#pragma once

#include <stdexcept>
#include <string>

namespace kiln::python {

class StatusError : public std::runtime_error {
public:
  StatusError(int status, const std::string &message)
      : std::runtime_error(message), status_(status) {}
  int status() const noexcept { return status_; }

private:
  int status_;
};

} // namespace kiln::python
