// A reference interpreter for loop IR, used to fold constant subgraphs at compile time
// (so folding and generated code share one lowering per op). Slow by design: it walks
// the value tree per element. Externs are not interpreted.
#pragma once

#include "loop/program.h"

#include <functional>
#include <map>

namespace kiln::loop {

class Interpreter {
public:
  explicit Interpreter(const Program &p, sym::Context &ctx);
  /// Evaluates `body` at every point of `shape` (vars bound in order); static shapes only.
  std::shared_ptr<ir::TensorData> evaluate(DType t, const std::vector<int64_t> &shape,
                                           const std::vector<sym::Expr> &vars, const VRef &body);
  /// Contents of a buffer: constants directly, intermediates by running their kernel.
  const ir::TensorData &bufferData(const Buffer *b);

private:
  struct Scalar2 {
    double f;
    int64_t i;
  };
  Scalar2 eval(const VRef &v, std::map<std::string, int64_t> &env);
  void runKernel(const Kernel &k, ir::TensorData &out);

  const Program &prog_;
  sym::Context &ctx_;
  std::map<const Buffer *, std::shared_ptr<ir::TensorData>> cache_;
};

void storeScalar(ir::TensorData &t, int64_t i, double f, int64_t iv);

} // namespace kiln::loop
