// String tensors: Cast to/from string, StringNormalizer, StringConcat, StringSplit and
// RegexFullMatch, through the string shims (an element is a `const char *`; produced text
// lives in the run's arena).
#include "lower/ops_common.h"

#include "kiln/shim.h"

#include <re2/re2.h>

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

LTensor requireString(OpCtx &c, size_t i, const char *what) {
  LTensor t = c.in(i);
  if (t.dtype != DType::String)
    fail("{}: {} must be a string tensor, got {}", c.node.describe(), what, dtypeName(t.dtype));
  return t;
}

/// A string attribute passed to a shim as a C string literal (no NUL bytes inside).
ExternArg cStringArg(OpCtx &c, const std::string &text, const char *what) {
  if (text.find('\0') != std::string::npos)
    fail("{}: {} contains a NUL byte; kiln passes it as a C string", c.node.describe(), what);
  ExternArg a = externArg(ExternArg::Kind::Text);
  a.strings = {text};
  return a;
}

void lowerStringConcat(OpCtx &c) {
  LTensor a = requireString(c, 0, "input X"), b = requireString(c, 1, "input Y");
  ir::Shape shape = broadcastShapes(a.shape, b.shape, c.node.describe());
  sym::Context &ctx = c.ctx();
  // Broadcasting copies pointers only (a realized view), never text.
  auto spread = [&](const LTensor &t) {
    if (t.shape == shape) return c.realize(t);
    return c.realize(c.pointwise(DType::String, shape, [&ctx, t, shape](const Index &idx) {
      return loadBroadcast(ctx, t, shape, idx);
    }));
  };
  loop::Buffer *ab = spread(a).buffer, *bb = spread(b).buffer;
  loop::Buffer *out = c.prog().newBuffer(DType::String, shape, loop::BufferKind::Intermediate, "");
  loop::Kernel *k = c.externKernel(loop::ExternKind::StringConcat);
  k->ext.inputs = {ab, bb};
  k->ext.outputs = {out};
  k->ext.args = {externArg(ExternArg::Kind::Site), externArg(ExternArg::Kind::Buffer, ab),
                 externArg(ExternArg::Kind::Buffer, bb),
                 value(product(ctx, shape, 0, shape.size())),
                 externArg(ExternArg::Kind::Buffer, out)};
  c.out(0, fromBuffer(ctx, out));
}

// Substrings per string kiln sizes StringSplit's output for when maxsplit does not bound
// them (the count is data-dependent; a run with more fails, naming the string).
constexpr int64_t kSplitRoomWithoutMaxsplit = 256;

void lowerStringSplit(OpCtx &c) {
  LTensor x = requireString(c, 0, "input X");
  std::string delimiter = c.node.attrString("delimiter", "");
  int64_t maxsplit = c.node.attrInt("maxsplit", -1);
  if (c.node.hasAttr("maxsplit") && maxsplit < 0)
    fail("{}: maxsplit must be >= 0, got {}", c.node.describe(), maxsplit);
  int64_t room = maxsplit >= 0 ? maxsplit + 1 : kSplitRoomWithoutMaxsplit;
  sym::Context &ctx = c.ctx();
  sym::Expr n = product(ctx, x.shape, 0, x.shape.size());
  sym::Expr count = c.lateSymbol("pieces", ctx.constant(room));
  ir::Shape shape = x.shape;
  shape.push_back(count);
  loop::Buffer *xb = c.realize(x).buffer;
  loop::Buffer *out = c.prog().newBuffer(DType::String, shape, loop::BufferKind::Intermediate, "");
  loop::Buffer *lengths =
      c.prog().newBuffer(DType::Int64, x.shape, loop::BufferKind::Intermediate, "");
  loop::Kernel *k = c.externKernel(loop::ExternKind::StringSplit);
  k->ext.inputs = {xb};
  k->ext.outputs = {out, lengths};
  ExternArg countOut = externArg(ExternArg::Kind::SymbolOut);
  countOut.dims = {count};
  k->ext.args = {externArg(ExternArg::Kind::Site),
                 externArg(ExternArg::Kind::Buffer, xb),
                 value(n),
                 cStringArg(c, delimiter, "delimiter"),
                 lit(maxsplit),
                 lit(room),
                 externArg(ExternArg::Kind::Buffer, out),
                 externArg(ExternArg::Kind::Buffer, lengths),
                 countOut};
  c.out(0, fromBuffer(ctx, out));
  c.out(1, fromBuffer(ctx, lengths));
}

void lowerRegexFullMatch(OpCtx &c) {
  LTensor x = requireString(c, 0, "input X");
  if (!c.node.hasAttr("pattern")) fail("{}: attribute 'pattern' is required", c.node.describe());
  std::string pattern = c.node.attrString("pattern", "");
  ExternArg patternArg = cStringArg(c, pattern, "pattern");
  // Checked here with the same library and options the runtime uses, so a bad pattern is a
  // compile error naming the node instead of a failure at the first run.
  re2::RE2::Options options;
  options.set_log_errors(false);
  re2::RE2 re(pattern, options);
  if (!re.ok())
    fail("{}: pattern \"{}\" is not valid RE2 syntax: {}", c.node.describe(), pattern, re.error());
  sym::Context &ctx = c.ctx();
  loop::Buffer *xb = c.realize(x).buffer;
  // The shim writes uint8_t (C has no bool in kiln's ABI); a cast view makes it bool.
  loop::Buffer *out = c.prog().newBuffer(DType::UInt8, x.shape, loop::BufferKind::Intermediate, "");
  loop::Kernel *k = c.externKernel(loop::ExternKind::RegexFullMatch);
  k->ext.inputs = {xb};
  k->ext.outputs = {out};
  k->ext.args = {
      externArg(ExternArg::Kind::Site), patternArg, externArg(ExternArg::Kind::Buffer, xb),
      value(product(ctx, x.shape, 0, x.shape.size())), externArg(ExternArg::Kind::Buffer, out)};
  c.out(0, mapUnary(c, fromBuffer(ctx, out), [](VRef v) { return loop::cast(v, DType::Bool); }));
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
                        {"StringConcat", 20, lowerStringConcat},
                        {"StringSplit", 20, lowerStringSplit},
                        {"RegexFullMatch", 20, lowerRegexFullMatch},
                    });
}

} // namespace kiln::lower
