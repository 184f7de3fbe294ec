#include "codegen/wrapper/control_flow.h"

#include "support/error.h"

#include <fmt/format.h>
#include <sstream>

namespace kiln::codegen {

ScratchLayout scratchLayout(const loop::Program &p, sym::Context &ctx) {
  ScratchLayout l;
  l.plan = sched::planMemory(p, ctx);
  l.total = ctx.constant(0);
  for (const sched::Slot &s : l.plan.slots) {
    l.offsets.push_back(l.total);
    l.total = l.total + sym::floorDiv(s.bytes + 63, 64) * 64;
  }
  return l;
}

std::string controlFlowPrelude() {
  return "struct kiln_cf_scratch { char *p; size_t cap; };\n\n";
}

namespace {

std::string cString(const std::string &s) {
  std::string r = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') r += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    r += c;
  }
  return r + "\"";
}

class CallGen {
public:
  CallGen(const loop::Kernel &k, int site, const CallPrinter &p)
      : k_(k), cf_(*k.call), site_(site), p_(p) {}

  std::string print() {
    os_ << "  { // " << k_.origin << ": " << cf_.origin << "\n";
    os_ << fmt::format("    int64_t SL[{}];\n", std::max<size_t>(p_.numSymbols, 1));
    if (p_.numSymbols)
      os_ << fmt::format("    memcpy(SL, {}, sizeof(int64_t) * {});\n", p_.symbols, p_.numSymbols);
    if (cf_.op == loop::ControlFlow::Op::If)
      printIf();
    else
      printLoop();
    os_ << "  }\n";
    return os_.str();
  }

private:
  /// Sizes and offsets in the caller: this call's iteration numbers live in SL.
  std::string cpp(sym::Expr e) const {
    return sym::toCpp(e, [this](sym::Expr s) {
      int i = p_.symbolIndex(s);
      KILN_ASSERT(i >= 0, "symbol {} has no slot", s.name());
      bool mine = s == cf_.iter || (cf_.batch.valid() && s == cf_.batch);
      return mine ? fmt::format("SL[{}]", i) : fmt::format("S{}", i);
    });
  }

  std::string bytes(const loop::Buffer *b, size_t skip) const {
    sym::Context &ctx = cf_.iter.ctx();
    sym::Expr n = ctx.constant(dtypeSize(b->dtype));
    for (size_t d = skip; d < b->shape.size(); ++d)
      n = n * b->shape[d];
    return cpp(n);
  }

  /// One call of body `bi` with the given input/output pointers (captures appended).
  void call(size_t bi, std::vector<std::string> ins, const std::vector<std::string> &outs,
            const std::string &ind) {
    const loop::SubProgram &sub = *cf_.bodies[bi];
    for (const loop::Buffer *b : cf_.captures[bi])
      ins.push_back(fmt::format("(void *){}", b->name));
    ins.push_back("nullptr");
    std::vector<std::string> o = outs;
    o.push_back("nullptr");
    std::string s = fmt::format("cfs[{}]", site_);
    os_ << ind << "{ // " << sub.name << "\n";
    os_ << ind << fmt::format("  void *in[] = {{{}}};\n", fmt::join(ins, ", "));
    os_ << ind << fmt::format("  void *out[] = {{{}}};\n", fmt::join(o, ", "));
    os_ << ind << "  const size_t need = (size_t)(" << cpp(p_.scratchBytes(sub)) << ");\n";
    os_ << ind << "  if (need > " << s << ".cap) {\n";
    os_ << ind << "    const size_t cap = need > 2 * " << s << ".cap ? need : 2 * " << s
        << ".cap;\n";
    std::string alloc = p_.ops.allocScratch("blk", "cap");
    for (size_t at = alloc.find("\n  "); at != std::string::npos; at = alloc.find("\n  ", at + 1))
      alloc.replace(at, 3, "\n" + ind + "    ");
    os_ << ind << "    " << alloc;
    os_ << ind << "    " << s << ".p = blk;\n" << ind << "    " << s << ".cap = cap;\n";
    os_ << ind << "  }\n";
    os_ << ind << "  int st = " << p_.function(sub) << "(ctx, in, out, SL, constants, " << s
        << ".p, cfs);\n";
    os_ << ind << "  if (st) return st;\n" << ind << "}\n";
  }

  void printIf() {
    std::vector<std::string> outs;
    for (const loop::Buffer *b : cf_.writes)
      outs.push_back(fmt::format("(void *){}", b->name));
    os_ << "    if (" << cf_.cond->name << "[0]) {\n";
    call(0, {}, outs, "      ");
    os_ << "    } else {\n";
    call(1, {}, outs, "      ");
    os_ << "    }\n";
  }

  void printLoop() {
    bool isLoop = cf_.op == loop::ControlFlow::Op::Loop;
    bool batched = cf_.batch.valid();
    std::string trips = cf_.trips.valid() ? cpp(cf_.trips)
                        : cf_.tripBuffer  ? fmt::format("(int64_t){}[0]", cf_.tripBuffer->name)
                                          : std::string("INT64_MAX");
    os_ << "    const int64_t trips = " << trips << ";\n";
    os_ << "    const int64_t batches = " << (batched ? cpp(cf_.batches) : "1") << ";\n";
    os_ << "    for (int64_t b = 0; b < batches; ++b) {\n";
    std::string ind = "      ";
    if (batched) os_ << ind << fmt::format("SL[{}] = b;\n", p_.symbolIndex(cf_.batch));
    if (isLoop)
      os_ << ind << "bool cond = "
          << (cf_.cond ? fmt::format("{}[0]", cf_.cond->name) : std::string("true")) << ";\n";
    // Carried values ping-pong between the output (for this batch) and a spare buffer,
    // starting from the initial value; a final copy lands the result in the output.
    for (size_t c = 0; c < cf_.carried.size(); ++c) {
      const auto &cv = cf_.carried[c];
      std::string sb = bytes(cv.spare, 0);
      os_ << ind
          << fmt::format("const char *cur{0} = (const char *){1} + b * ({2});\n", c, cv.init->name,
                         sb);
      os_ << ind << fmt::format("char *dst{0} = (char *){1} + b * ({2});\n", c, cv.out->name, sb);
    }
    os_ << ind << "int64_t it = 0;\n";
    os_ << ind << "for (; it < trips" << (isLoop ? " && cond" : "") << "; ++it) {\n";
    std::string in2 = ind + "  ";
    os_ << in2 << fmt::format("SL[{}] = it;\n", p_.symbolIndex(cf_.iter));
    std::vector<std::string> ins, outs;
    if (isLoop) {
      os_ << in2 << "bool condOut = false;\n";
      ins.push_back("(void *)&cond");
      outs.push_back("(void *)&condOut");
    }
    for (size_t c = 0; c < cf_.carried.size(); ++c) {
      os_ << in2
          << fmt::format("char *nxt{0} = cur{0} == dst{0} ? (char *){1} : dst{0};\n", c,
                         cf_.carried[c].spare->name);
      ins.push_back(fmt::format("(void *)cur{}", c));
      outs.push_back(fmt::format("(void *)nxt{}", c));
    }
    for (const loop::Buffer *b : cf_.scanInputs)
      ins.push_back(fmt::format("(void *){}", b->name));
    size_t lead = batched ? 2 : 1;
    for (const auto &so : cf_.scanOutputs) {
      std::string pos = so.reverse ? "trips - 1 - it" : "it";
      outs.push_back(fmt::format("(void *)((char *){} + (b * trips + {}) * ({}))", so.buf->name,
                                 pos, bytes(so.buf, lead)));
    }
    call(0, ins, outs, in2);
    for (size_t c = 0; c < cf_.carried.size(); ++c)
      os_ << in2 << fmt::format("cur{0} = nxt{0};\n", c);
    if (isLoop) os_ << in2 << "cond = condOut;\n";
    os_ << ind << "}\n";
    if (isLoop && !cf_.scanOutputs.empty())
      os_ << ind
          << fmt::format("if (it < trips) {{\n{0}  snprintf(ctx->error, ctx->error_size, \"%s: its "
                         "condition ended the loop after %lld of %lld iterations; kiln sizes scan "
                         "outputs by the trip count and cannot return fewer\", {1}, (long long)it, "
                         "(long long)trips);\n{0}  return KILN_ERR_UNSUPPORTED;\n{0}}}\n",
                         ind, cString(cf_.origin));
    for (size_t c = 0; c < cf_.carried.size(); ++c)
      os_ << ind
          << fmt::format("if (cur{0} != dst{0}) memcpy(dst{0}, cur{0}, {1});\n", c,
                         bytes(cf_.carried[c].spare, 0));
    os_ << "    }\n";
  }

  const loop::Kernel &k_;
  const loop::ControlFlow &cf_;
  int site_;
  const CallPrinter &p_;
  std::ostringstream os_;
};

} // namespace

std::string printCall(const loop::Kernel &k, int site, const CallPrinter &p) {
  return CallGen(k, site, p).print();
}

} // namespace kiln::codegen
