#include "loop/program.h"
#include "loop/control_flow.h"
#include "support/error.h"
#include <algorithm>

#include <fmt/format.h>
#include <sstream>
#include <unordered_set>

namespace kiln::loop {

sym::Expr Buffer::numel(sym::Context &ctx) const {
  sym::Expr n = ctx.constant(1);
  for (const sym::Expr &d : shape)
    n = n * d;
  return n;
}

sym::Expr linearIndex(sym::Context &ctx, const std::vector<sym::Expr> &idx,
                      const ir::Shape &shape) {
  KILN_ASSERT(idx.size() == shape.size(), "index rank {} vs shape rank {}", idx.size(),
              shape.size());
  sym::Expr off = ctx.constant(0);
  for (size_t d = 0; d < shape.size(); ++d)
    off = off * shape[d] + idx[d];
  return off;
}

const char *reduceName(ReduceOp op) {
  switch (op) {
  case ReduceOp::Sum:
    return "sum";
  case ReduceOp::Prod:
    return "prod";
  case ReduceOp::Max:
    return "max";
  case ReduceOp::Min:
    return "min";
  case ReduceOp::ArgMax:
    return "argmax";
  case ReduceOp::ArgMin:
    return "argmin";
  }
  return "?";
}

const char *externKindName(ExternKind k) {
  switch (k) {
  case ExternKind::Conv:
    return "Conv";
  case ExternKind::MatMul:
    return "MatMul/Gemm";
  case ExternKind::Attention:
    return "attention";
  case ExternKind::ScatterElements:
    return "ScatterElements";
  case ExternKind::ScatterND:
    return "ScatterND";
  case ExternKind::NonZero:
    return "NonZero";
  case ExternKind::Unique:
    return "Unique";
  case ExternKind::NonMaxSuppression:
    return "NonMaxSuppression";
  case ExternKind::ToString:
    return "Cast to string";
  case ExternKind::FromString:
    return "Cast from string";
  case ExternKind::StringNormalizer:
    return "StringNormalizer";
  case ExternKind::StringLookup:
    return "LabelEncoder";
  case ExternKind::StringConcat:
    return "StringConcat";
  case ExternKind::StringSplit:
    return "StringSplit";
  case ExternKind::RegexFullMatch:
    return "RegexFullMatch";
  case ExternKind::ImageDecode:
    return "ImageDecoder";
  case ExternKind::MatMulMulti:
    return "sibling MatMuls";
  case ExternKind::ConvChain:
    return "inverted-residual Conv chain";
  }
  return "?";
}

const ExternParam *ExternCall::param(const std::string &field) const {
  for (const ExternParam &p : params)
    if (p.field == field && p.index < 0) return &p;
  return nullptr;
}

// Value expressions are DAGs (a node used twice is shared): `seen` makes the walk visit
// each node once instead of once per path, which is exponential for deep reuse.
static void collectLoads(const VRef &v, std::vector<Buffer *> &out,
                         std::unordered_set<const VNode *> &seen) {
  if (!seen.insert(v.get()).second) return;
  if (v->kind == VKind::Load) {
    if (std::find(out.begin(), out.end(), v->buf) == out.end()) out.push_back(v->buf);
    for (auto &[s, iv] : v->indirect)
      collectLoads(iv, out, seen);
  }
  for (const VRef &a : v->args)
    collectLoads(a, out, seen);
}

std::vector<Buffer *> Kernel::reads() const {
  std::vector<Buffer *> r;
  if (kind == KernelKind::Attention) {
    std::vector<Buffer *> r{attn.q, attn.k, attn.v};
    if (attn.mask) r.push_back(attn.mask);
    return r;
  }
  if (kind == KernelKind::Extern || kind == KernelKind::Call) {
    for (Buffer *b : kind == KernelKind::Call ? call->reads : ext.inputs)
      if (b && std::find(r.begin(), r.end(), b) == r.end()) r.push_back(b);
    return r;
  }
  std::unordered_set<const VNode *> seen;
  collectLoads(body, r, seen);
  if (scatterIndex) collectLoads(scatterIndex, r, seen);
  return r;
}

std::vector<Buffer *> Kernel::writes() const {
  switch (kind) {
  case KernelKind::Pointwise:
  case KernelKind::Reduction:
  case KernelKind::Attention:
    return {out};
  case KernelKind::Extern:
    return ext.outputs;
  case KernelKind::Call:
    return call->writes;
  }
  return {};
}

sym::Expr product(sym::Context &ctx, const ir::Shape &shape, size_t begin, size_t end) {
  sym::Expr p = ctx.constant(1);
  for (size_t d = begin; d < end && d < shape.size(); ++d)
    p = p * shape[d];
  return p;
}

Buffer *Program::newBuffer(DType t, ir::Shape shape, BufferKind kind, const std::string &hint) {
  auto b = std::make_unique<Buffer>();
  b->id = static_cast<int>(buffers.size());
  b->name = fmt::format("buf{}", b->id);
  b->label = hint;
  b->dtype = t;
  b->shape = std::move(shape);
  b->kind = kind;
  buffers.push_back(std::move(b));
  return buffers.back().get();
}

Kernel *Program::newKernel(KernelKind k) {
  auto kn = std::make_unique<Kernel>();
  kn->kind = k;
  kn->id = static_cast<int>(kernels.size());
  kernels.push_back(std::move(kn));
  return kernels.back().get();
}

std::string dump(const Program &p) {
  std::ostringstream os;
  for (const auto &k : p.kernels) {
    if (k->kind == KernelKind::Call) {
      os << "kernel" << k->id << ": " << describeCall(*k->call) << "\n";
      continue;
    }
    if (k->kind == KernelKind::Attention) {
      const AttentionCall &a = k->attn;
      os << "kernel" << k->id << ": " << k->out->name << ir::shapeToString(k->out->shape)
         << " = attention(" << a.q->name << ", " << a.k->name << ", " << a.v->name << ", "
         << (a.mask ? a.mask->name : "no mask") << ")\n";
      continue;
    }
    if (k->kind == KernelKind::Extern) {
      os << "kernel" << k->id << ": extern " << externKindName(k->ext.kind);
      if (!k->ext.function.empty()) os << " as " << k->ext.function;
      os << "(";
      for (size_t i = 0; i < k->ext.inputs.size(); ++i)
        os << (i ? ", " : "") << (k->ext.inputs[i] ? k->ext.inputs[i]->name : "null");
      os << ") -> ";
      for (size_t i = 0; i < k->ext.outputs.size(); ++i)
        os << (i ? ", " : "") << k->ext.outputs[i]->name;
      os << "\n";
      continue;
    }
    os << "kernel" << k->id << ": " << k->out->name << ir::shapeToString(k->out->shape) << " = ";
    if (k->kind == KernelKind::Reduction) {
      os << reduceName(k->rop) << " over " << ir::shapeToString(k->rsizes) << " of ";
    }
    os << toString(k->body);
    if (!k->valueOut.empty()) { // a value kernel: which elements become shape values
      os << (p.runsBeforeRun(*k) ? " -> values before the run [" : " -> values in order [");
      for (size_t j = 0; j < k->valueOut.size(); ++j)
        os << (j ? ", " : "") << (k->valueOut[j].valid() ? k->valueOut[j].name() : "-");
      os << "]";
    }
    os << "\n";
  }
  return os.str();
}

} // namespace kiln::loop
