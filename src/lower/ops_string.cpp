// String tensors: Cast to/from string and StringNormalizer, through the level-3 string
// shims (an element is a `const char *`; produced text lives in the run's arena).
#include "lower/ops_common.h"

#include "kiln/shim.h"

namespace kiln::lower {

namespace {

using loop::ExternArg;

ExternArg lit(int64_t v) {
  return externInt(v);
}
ExternArg value(sym::Expr e) {
  ExternArg a = externArg(ExternArg::Kind::Value);
  a.dims = {e};
  return a;
}

void lowerStringNormalizer(OpCtx &c) {
  LTensor x = c.in(0);
  if (x.dtype != DType::String) fail("{}: input must be a string tensor", c.node.describe());
  bool twoDim = x.rank() == 2;
  if (x.rank() != 1 && !(twoDim && c.requireStatic(x.shape[0], "the number of rows") == 1))
    fail("{}: input must be [C] or [1, C], got {}", c.node.describe(), ir::shapeToString(x.shape));
  std::string action = c.node.attrString("case_change_action", "NONE");
  int caseAction = action == "NONE" ? 0 : action == "LOWER" ? 1 : action == "UPPER" ? 2 : -1;
  if (caseAction < 0) fail("{}: case_change_action '{}' is not valid", c.node.describe(), action);
  std::string locale = c.node.attrString("locale", "");
  if (!locale.empty() && locale != "en_US" && locale != "C")
    c.unsupported(
        fmt::format("StringNormalizer locale '{}' (kiln changes ASCII case only)", locale));
  sym::Context &ctx = c.ctx();
  sym::Expr n = x.shape[x.rank() - 1];
  sym::Expr count = c.lateSymbol("count", sym::max(n, ctx.constant(1)));
  ir::Shape shape = twoDim ? ir::Shape{ctx.constant(1), count} : ir::Shape{count};
  loop::Buffer *xb = c.realize(x).buffer;
  loop::Buffer *out = c.prog().newBuffer(DType::String, shape, loop::BufferKind::Intermediate, "");
  loop::Kernel *k = c.externKernel(loop::ExternKind::StringNormalizer);
  k->ext.inputs = {xb};
  k->ext.outputs = {out};
  ExternArg stop = externArg(ExternArg::Kind::Strings);
  stop.strings = c.node.attrStrings("stopwords");
  for (const std::string &w : stop.strings) // the shim gets C strings
    if (w.find('\0') != std::string::npos)
      fail("{}: a stopword contains a NUL byte; kiln passes stopwords as C strings",
           c.node.describe());
  ExternArg countOut = externArg(ExternArg::Kind::SymbolOut);
  countOut.dims = {count};
  k->ext.args = {externArg(ExternArg::Kind::Site),
                 externArg(ExternArg::Kind::Buffer, xb),
                 value(n),
                 lit(caseAction),
                 lit(c.node.attrInt("is_case_sensitive", 0)),
                 stop,
                 lit(static_cast<int64_t>(stop.strings.size())),
                 externArg(ExternArg::Kind::Buffer, out),
                 countOut};
  c.out(0, fromBuffer(ctx, out));
}

} // namespace

LTensor castString(OpCtx &c, const LTensor &x, DType to) {
  if (x.dtype == to) return x;
  int et = shimElemType(x.dtype == DType::String ? to : x.dtype);
  if (et < 0) c.unsupported(fmt::format("Cast between string and {}", dtypeName(to)));
  DType num = x.dtype == DType::String ? to : x.dtype;
  loop::Buffer *xb = c.realize(x).buffer;
  loop::Buffer *out = c.prog().newBuffer(to, x.shape, loop::BufferKind::Intermediate, "");
  bool toString = to == DType::String;
  loop::Kernel *k =
      c.externKernel(toString ? loop::ExternKind::ToString : loop::ExternKind::FromString);
  k->ext.inputs = {xb};
  k->ext.outputs = {out};
  auto buf = [](loop::Buffer *b) { return externArg(ExternArg::Kind::Buffer, b); };
  ExternArg count = value(product(c.ctx(), x.shape, 0, x.shape.size()));
  k->ext.args = {externArg(ExternArg::Kind::Site)};
  if (toString)
    k->ext.args.insert(k->ext.args.end(), {lit(et), lit(dtypeSize(num)), buf(xb), count, buf(out)});
  else
    k->ext.args.insert(k->ext.args.end(), {buf(xb), count, lit(et), lit(dtypeSize(num)), buf(out)});
  return fromBuffer(c.ctx(), out);
}

void registerStringOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"StringNormalizer", 10, lowerStringNormalizer},
                    });
}

} // namespace kiln::lower
