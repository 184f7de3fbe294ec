#include "loop/control_flow.h"

#include <fmt/format.h>
#include <sstream>

namespace kiln::loop {

namespace {

std::string names(const std::vector<Buffer *> &bs) {
  std::vector<std::string> r;
  for (const Buffer *b : bs)
    r.push_back(b ? b->name : "null");
  return fmt::format("{}", fmt::join(r, ", "));
}

const char *opName(ControlFlow::Op op) {
  switch (op) {
  case ControlFlow::Op::If:
    return "if";
  case ControlFlow::Op::Loop:
    return "loop";
  case ControlFlow::Op::Scan:
    return "scan";
  }
  return "?";
}

} // namespace

std::string describeCall(const ControlFlow &cf) {
  std::ostringstream os;
  os << "call " << opName(cf.op) << "(" << names(cf.reads) << ") -> " << names(cf.writes);
  if (cf.trips.valid()) os << " trips " << sym::toString(cf.trips);
  for (const auto &b : cf.bodies) {
    os << "\n  | " << b->name << ":";
    std::istringstream lines(dump(b->prog));
    for (std::string line; std::getline(lines, line);)
      os << "\n  | " << line;
  }
  return os.str();
}

void collectSubPrograms(const Program &p, std::vector<const SubProgram *> &out) {
  for (const auto &k : p.kernels) {
    if (k->kind != KernelKind::Call) continue;
    for (const auto &b : k->call->bodies) {
      collectSubPrograms(b->prog, out);
      out.push_back(b.get());
    }
  }
}

} // namespace kiln::loop
