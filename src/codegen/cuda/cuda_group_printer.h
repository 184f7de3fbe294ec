// GroupPrinter: the body of one fused group's CUDA kernel by its CudaSchedule strategy, shared
// by cuda_backend.cpp (dispatch, reductions) and cuda_elementwise.cpp. Not a public interface.
#pragma once

#include "codegen/common/c_printer.h"

#include <fmt/format.h>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace kiln::codegen {

class GroupPrinter {
public:
  GroupPrinter(std::ostringstream &os, const loop::KernelGroup &g, const SymbolNamer &model,
               sym::Context &ctx)
      : os_(os), g_(g), model_(model), ctx_(ctx), idx_(g.cuda.index32 ? "int32_t" : "int64_t") {}

  LaunchSpec print();

private:
  sym::Expr capBlocks(sym::Expr n) { return sym::min(n, ctx_.constant(g_.cuda.maxBlocks)); }
  sym::Expr blocksFor(sym::Expr n, int block) {
    return capBlocks(sym::floorDiv(n + ctx_.constant(block - 1), ctx_.constant(block)));
  }
  std::string cpp(sym::Expr e) { return sym::toCpp(e, model_); }
  /// Tiles of the tiled permute: 32x32 over (tileDim, innermost) times the other dims.
  sym::Expr tiledBlocks(const loop::Kernel &k);
  std::string idx(sym::Expr e) { return fmt::format("(({})({}))", idx_, cpp(e)); }

  /// Declares the loop variables `prefix{from..to-1}` (row-major over sizes) from `lin`.
  void decompose(const std::string &indent, const std::string &lin,
                 const std::vector<sym::Expr> &sizes, size_t from, size_t to, const char *prefix,
                 const std::vector<sym::Expr> &vars, std::map<const sym::Node *, std::string> &loc);

  std::string outIndex(const loop::Kernel &k, std::map<const sym::Node *, std::string> &loc);

  std::string gridStride(const std::string &var, const std::string &start, const std::string &n,
                         const std::string &step) {
    return fmt::format("for ({0} {1} = {2}; {1} < {3}; {1} += {4}) {{\n", idx_, var, start, n,
                       step);
  }
  std::string globalThread() const {
    return fmt::format("({})blockIdx.x * blockDim.x + threadIdx.x", idx_);
  }
  std::string allThreads() const { return fmt::format("({})gridDim.x * blockDim.x", idx_); }

  void store(const std::string &indent, const loop::Kernel &k, const std::string &index,
             const std::string &v) {
    os_ << indent << k.out->name << "[" << index << "] = " << storeExpr(k.out, v) << ";\n";
  }

  /// A scatter kernel: threads over the updates, each stored at its computed position.
  void printScatter(const loop::Kernel &k);

  static const char *vectorType(DType t);

  /// Four consecutive elements per thread: 16-byte loads and one 16-byte store when this
  /// thread's addresses are aligned (checked at run time: a view or a caller's tensor may
  /// be offset), else the same lanes with scalar accesses.
  void printVectorized(const loop::Kernel &k);

  /// A permute through 32x32 shared-memory tiles (rows padded to 33 against bank
  /// conflicts): the block reads its tile with threads along dim `tileDim`, where the tiled
  /// loads are contiguous, then writes the output with threads along the innermost dim.
  void printTiled(const loop::Kernel &k);

  void printElementwise(const loop::Kernel &k);

  std::string accType(const loop::Kernel &k) { return computeType(k.accDtype); }
  std::string init(const loop::Kernel &k) {
    std::string s = reduceInit(k.rop, k.accDtype);
    if (auto pos = s.find("ACC"); pos != std::string::npos) s.replace(pos, 3, accType(k));
    return s;
  }
  bool isArg(const loop::Kernel &k) const {
    return k.rop == loop::ReduceOp::ArgMax || k.rop == loop::ReduceOp::ArgMin;
  }

  /// Serial loops over the reduction vars, folding each value into acc/best.
  void serialReduction(std::string indent, const loop::Kernel &k,
                       std::map<const sym::Node *, std::string> &loc);

  void printThreadPerOutput(const loop::Kernel &k);

  /// The block's threads stride over the reduction; partials combine by warp shuffles, then
  /// across warps through shared memory. Thread 0 stores. Every thread of the block must
  /// reach this code (it synchronises).
  void blockReduction(const std::string &in, const loop::Kernel &k,
                      std::map<const sym::Node *, std::string> &loc, const std::string &outIdx,
                      int tag);

  void printBlockPerOutput(const loop::Kernel &k);

  void printBlockPerOuter();

  std::ostringstream &os_;
  const loop::KernelGroup &g_;
  const SymbolNamer &model_;
  sym::Context &ctx_;
  std::string idx_;
};

} // namespace kiln::codegen
