#include "codegen/wrapper/extern_call.h"

#include "codegen/common/c_printer.h"
#include "support/error.h"

#include <fmt/format.h>

#include <cmath>
#include <sstream>
#include <vector>

namespace kiln::codegen {

namespace {

/// A C float expression (Clip bounds may be infinite).
std::string floatLiteral(double v) {
  if (std::isinf(v)) return v > 0 ? "INFINITY" : "-INFINITY";
  return fmt::format("(float)({:.17g})", v);
}

std::string paramField(const loop::ExternParam &f) {
  std::string s = f.nest.empty() ? f.field : f.nest + "." + f.field;
  return f.index < 0 ? s : fmt::format("{}[{}]", s, f.index);
}

std::string paramValue(const loop::ExternParam &f, const ExternCallNames &names) {
  switch (f.kind) {
  case loop::ExternParam::Kind::Int:
    return std::to_string(f.number);
  case loop::ExternParam::Kind::Float:
    return floatLiteral(f.real);
  case loop::ExternParam::Kind::Sym:
    return names.expr(f.expr);
  }
  return "0";
}

} // namespace

ExternCallText printExternCall(const loop::ExternCall &e, const ExternCallNames &names) {
  std::ostringstream os;
  if (!e.paramsType.empty()) os << "    " << e.paramsType << " p;\n    memset(&p, 0, sizeof p);\n";
  for (const loop::ExternParam &f : e.params)
    os << "    p." << paramField(f) << " = " << paramValue(f, names) << ";\n";
  std::vector<std::string> args;
  int arrays = 0; // local arrays and floats are numbered in argument order
  for (const loop::ExternArg &a : e.args) {
    switch (a.kind) {
    case loop::ExternArg::Kind::Site:
      args.push_back(fmt::format("INT64_C({})", e.site));
      break;
    case loop::ExternArg::Kind::Null:
      args.push_back("nullptr");
      break;
    case loop::ExternArg::Kind::Buffer:
      args.push_back(a.buf->name);
      break;
    case loop::ExternArg::Kind::Params:
      args.push_back("&p");
      break;
    case loop::ExternArg::Kind::Layout:
      args.push_back("KILN_LAYOUT_CHANNELS_LAST");
      break;
    case loop::ExternArg::Kind::Int:
      args.push_back(std::to_string(a.number));
      break;
    case loop::ExternArg::Kind::Text:
      args.push_back(cString(a.strings.at(0)));
      break;
    case loop::ExternArg::Kind::Strings: {
      std::vector<std::string> quoted;
      for (const std::string &t : a.strings)
        quoted.push_back(cString(t));
      quoted.push_back("nullptr");
      os << fmt::format("    static const char *const s{}[] = {{{}}};\n", arrays,
                        fmt::join(quoted, ", "));
      args.push_back(fmt::format("s{}", arrays++));
      break;
    }
    case loop::ExternArg::Kind::Value:
      args.push_back(fmt::format("(int64_t)({})", names.expr(a.dims.at(0))));
      break;
    case loop::ExternArg::Kind::SymbolOut:
      args.push_back("&" + names.symbol(a.dims.at(0)));
      break;
    case loop::ExternArg::Kind::Float:
      os << fmt::format("    const float f{} = {};\n", arrays, floatLiteral(a.real));
      args.push_back(fmt::format("&f{}", arrays++));
      break;
    case loop::ExternArg::Kind::Buffers: {
      std::vector<std::string> ptrs;
      for (const loop::Buffer *b : a.bufs) {
        KILN_ASSERT(!b || b->dtype == DType::Float32, "a buffer array holds {} (float32 only)",
                    b ? b->name : "");
        ptrs.push_back(b ? b->name : "nullptr");
      }
      os << fmt::format("    const float *const bp{}[] = {{{}}};\n", arrays, fmt::join(ptrs, ", "));
      args.push_back(fmt::format("bp{}", arrays++));
      break;
    }
    case loop::ExternArg::Kind::Dims: {
      std::vector<std::string> ds;
      for (const sym::Expr &d : a.dims)
        ds.push_back(names.expr(d));
      if (ds.empty()) ds.push_back("0");
      os << fmt::format("    const int64_t d{}[] = {{{}}};\n", arrays, fmt::join(ds, ", "));
      args.push_back(fmt::format("d{}", arrays++));
      break;
    }
    }
  }
  return {os.str(), fmt::format("{}", fmt::join(args, ", "))};
}

} // namespace kiln::codegen
