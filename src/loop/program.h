// Loop IR program: buffers and the kernels that fill them, in execution order.
#pragma once

#include "ir/graph.h"
#include "loop/vexpr.h"

#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kiln::loop {

enum class BufferKind { Input, Output, Constant, Intermediate };

struct Buffer {
  int id = 0;
  std::string name;  // C identifier in generated code
  std::string label; // ONNX name it came from (constants: the initializer name)
  DType dtype = DType::Float32;
  ir::Shape shape; // contiguous row-major
  BufferKind kind = BufferKind::Intermediate;
  int index = -1;                             // input/output/constant number
  std::shared_ptr<const ir::TensorData> data; // constants: contents
  sym::Expr numel(sym::Context &ctx) const;
};

enum class ReduceOp { Sum, Prod, Max, Min, ArgMax, ArgMin };
const char *reduceName(ReduceOp op);

/// Call: host control flow (If/Loop/Scan) around sub-programs (loop/control_flow.h).
/// Attention: fused scaled-dot-product attention (AttentionCall); per-device legalisation
/// turns it into the CPU shim's extern call or keeps it for a generated CUDA kernel.
enum class KernelKind { Pointwise, Reduction, Extern, Call, Attention };

struct ControlFlow;

/// What an extern call computes. Lowering names only this; per-device legalisation
/// (sched/legalize_externs.cpp) picks the shim that runs it (ExternCall::function) or refuses
/// the node for that device.
enum class ExternKind {
  Conv,
  MatMul,
  Attention,
  ScatterElements,
  ScatterND,
  NonZero,
  Unique,
  NonMaxSuppression,
  ToString,
  FromString,
  StringNormalizer,
  StringLookup,
  StringConcat,
  StringSplit,
  RegexFullMatch,
  ImageDecode,
  MatMulMulti, // matmuls sharing A as one GEMM (passes/fuse_sibling_matmul.cpp)
  ConvChain    // an inverted-residual block's convs, band by band (passes/fuse_conv_chain.cpp)
};
/// The ONNX operation an extern kind computes, for messages ("Conv", "NonZero", ...).
const char *externKindName(ExternKind k);

/// One argument of a shim call, printed by the wrapper in order.
struct ExternArg {
  // Int: the integer `number` (a count, a rank, an element-type code from kiln/shim.h).
  // Float: the address of a float holding `real` (e.g. an attention scale).
  // SymbolOut: the address of a run-time shape value (dims[0]) the call writes (a size that
  // depends on the data; RuntimeShapeValue::Producer::SymbolOut).
  // Strings: a static array of C strings (`strings`), e.g. StringNormalizer's stopwords.
  // Value: the int64 value of the expression dims[0] (e.g. an element count).
  // Text: one C string (`strings[0]`, no NUL byte), e.g. a regex pattern.
  // Layout: the channels-last layout tag (the CPU legalises such a Conv to its NHWC shim).
  // Buffers: a local array of float buffer pointers (`bufs`; nullptr entries allowed), e.g.
  // the B matrices of kiln_shim_matmul_multi_v1.
  enum class Kind {
    Buffer,
    Null,
    Dims,
    Site,
    Params,
    Layout,
    Int,
    Float,
    SymbolOut,
    Strings,
    Text,
    Value,
    Buffers
  };
  Kind kind = Kind::Null;
  int64_t number = 0;
  double real = 0;
  Buffer *buf = nullptr;
  std::vector<Buffer *> bufs;
  std::vector<sym::Expr> dims;
  std::vector<std::string> strings;

  /// A buffer argument, or a null pointer (Kind::Null) when there is none (an absent input).
  static ExternArg bufferOrNull(Buffer *b) {
    ExternArg a;
    a.kind = b ? Kind::Buffer : Kind::Null;
    a.buf = b;
    return a;
  }
};

/// One field of a shim's params struct: `field` (or `field[index]` when index >= 0; inside the
/// struct member `nest` when set) set to an integer, a float or a shape expression.
struct ExternParam {
  enum class Kind { Int, Float, Sym };
  std::string field;
  int index = -1;
  Kind kind = Kind::Int;
  int64_t number = 0;
  double real = 0;
  sym::Expr expr;
  std::string nest;
  static ExternParam integer(std::string f, int64_t v, int idx = -1) {
    return {std::move(f), idx, Kind::Int, v, 0, {}, {}};
  }
  static ExternParam floating(std::string f, double v) {
    return {std::move(f), -1, Kind::Float, 0, v, {}, {}};
  }
  static ExternParam symbolic(std::string f, sym::Expr e, int idx = -1) {
    return {std::move(f), idx, Kind::Sym, 0, 0, std::move(e), {}};
  }
};

/// One extern call: what it computes, its arguments and its params struct's fields.
struct ExternCall {
  ExternKind kind = ExternKind::Conv;
  std::string function;   // the shim (e.g. "kiln_shim_conv_v1"), set by legalisation
  std::string paramsType; // C struct type of the params, set by legalisation
  std::vector<ExternArg> args;
  std::vector<Buffer *> inputs, outputs; // for liveness
  std::vector<ExternParam> params;
  const ExternParam *param(const std::string &field) const;
  int site = 0;
};

/// out[b,h,i,:] = softmax(scale * q[b,h,i,:] . k[b,h,j,:] + mask[b,h,i,j] over j) . v[b,h,j,:],
/// q/k/v/out contiguous [B, H, S, D]; a row whose scores are all -inf gives zeros.
struct AttentionCall {
  Buffer *q = nullptr, *k = nullptr, *v = nullptr;
  Buffer *mask = nullptr;             // optional additive float mask
  std::vector<sym::Expr> maskStrides; // elements per step of b, h, i, j (0: broadcast)
  std::vector<sym::Expr> dims;        // B, H, Sq, Skv, D, Dv
  std::optional<double> scale;        // absent: 1/sqrt(D)
  // Empty: q, k, v and out are contiguous [B, H, S, D]. Else 16 exprs, four per tensor (q, k,
  // v, out): the offset of element [0, 0, 0, 0] in its buffer and the strides of b, h and s
  // (kiln_shim_sdpa_v3's layout; the last dim is contiguous).
  std::vector<sym::Expr> layout;
};

struct Kernel {
  KernelKind kind = KernelKind::Pointwise;
  int id = 0;
  std::string origin; // ONNX node names it came from (for comments/errors)
  Buffer *out = nullptr;
  std::vector<sym::Expr> vars; // loop variables over out->shape
  VRef body;                   // Pointwise: value; Reduction: reduced operand
  // Reduction only:
  std::vector<sym::Expr> rvars;  // reduction variables
  std::vector<sym::Expr> rsizes; // their extents
  ReduceOp rop = ReduceOp::Sum;
  bool lastIndex = false; // ArgMax/ArgMin: report the last index of ties
  DType accDtype = DType::Float32;
  // Scatter (Pointwise only; lowered so for devices without a scatter shim): the vars range
  // over `scatterShape` (the updates) and each value is stored at the data-dependent linear
  // index `scatterIndex` of `out` (skipped when outside it), combined with what is there by
  // `scatterOp`. Another kernel wrote `out` first.
  VRef scatterIndex;
  ir::Shape scatterShape;
  enum class Combine { None, Add, Mul, Max, Min } scatterOp = Combine::None;
  ExternCall ext;
  std::shared_ptr<ControlFlow> call; // Call only
  AttentionCall attn;                // Attention only (out is the output)
  // Pointwise only: a *value kernel*. Element j of its int64 output is the run-time shape
  // value valueOut[j] (a RuntimeShapeValue of the program; an invalid Expr: not read). When
  // those values are known (before the run or in program order) is their phase
  // (shapeValuePhase). Such a kernel is never dead; one that runs in order is alone in its
  // group, one that runs before the run is in no group (bind_shapes calls it).
  std::vector<sym::Expr> valueOut;
  std::vector<Buffer *> reads() const;
  std::vector<Buffer *> writes() const;
};

/// How the CPU printer runs a group; decided by sched::scheduleGroups.
struct CpuSchedule {
  bool groupParallel = false;       // fused group: one OpenMP region over the shared loops
  std::vector<bool> memberParallel; // per member without shared loops: its own region
  // Per member: the extent of a tiny innermost output dim that is unrolled inside a simd
  // loop over the dim above it (0: the innermost dim is the simd loop, as usual).
  std::vector<int> memberUnrollInner;
  // Fused group whose members all read and write contiguously along the last shared loop,
  // with a reduction that walks a strided dim (a spatial mean of channels-last data): that
  // loop is cut into blocks of this many iterations, each a simd loop around the members
  // (0: the members' own innermost loops are the simd loops, as usual).
  int64_t simdSharedBlock = 0;
  int64_t minParallelWork = 16384; // run-time work below which a region stays serial
};

/// How the CUDA printer maps a group onto threads; decided by sched::scheduleGroups.
enum class CudaStrategy {
  Elementwise,     // pointwise: one thread per output element (grid-stride)
  ThreadPerOutput, // reduction over a short extent: one thread per output
  BlockPerOutput,  // reduction: one block per output, shuffles + shared memory combine
  BlockPerOuter,   // fused group (softmax, layer norm): one block per shared outer point
  FusedAttention   // attention: a block per tile of query rows, key tiles in shared memory
};
struct CudaSchedule {
  CudaStrategy strategy = CudaStrategy::Elementwise;
  int block = 256;
  bool index32 = false; // every index provably below 2^31: 32-bit index arithmetic
  // Elementwise: consecutive elements of the innermost dim per thread (1 or 4), with the
  // body's loads in `vectorLoads` (stride 1 along that dim) read as one 16-byte vector
  // when every such address and the store's are 16-byte aligned (checked per thread).
  int vector = 1;
  std::vector<const VNode *> vectorLoads;
  // Elementwise transpose: the loads in `tileLoads` step by 1 along output dim `tileDim`
  // (not the innermost), so they go through 32x32 shared-memory tiles, read coalesced
  // along tileDim and stored coalesced along the innermost dim. -1: no tiles.
  int tileDim = -1;
  std::vector<const VNode *> tileLoads;
  int64_t maxBlocks = int64_t(1) << 20; // grid-stride beyond this many blocks
  // FusedAttention: query rows per warp and keys per shared-memory tile.
  int rowsPerWarp = 2;
  int keyTile = 32;
  std::string tuneKey; // sched/tuning.h: how a tuning file names this group
  // Run-time variants (KernelGroup::cudaVariants): the printed function this configuration
  // launches (0: kiln_kernel_<id>, n: kiln_kernel_<id>_v<n>) and that function's
  // __launch_bounds__ (0: block; variants sharing a function take the largest block).
  int function = 0;
  int launchBound = 0;
};

/// A tuned configuration the wrapper picks at run time (sched/tuning.cpp): `schedule` runs
/// while the group's cudaMeasure lies in one of `ranges`, each [lo, hi) with INT64_MIN /
/// INT64_MAX for no bound.
struct CudaVariant {
  CudaSchedule schedule;
  std::vector<std::pair<int64_t, int64_t>> ranges;
};

/// Kernels executed as one function. With more than one member they share the loops
/// over their first `outerRank` output dims (reduction epilogue fusion, sched/).
struct KernelGroup {
  std::vector<Kernel *> kernels;
  size_t outerRank = 0;
  CpuSchedule cpu;
  CudaSchedule cuda;
  // Two or more when tuned configurations differ by size: the wrapper chooses by the value
  // of cudaMeasure (the group's work over the shape symbols); `cuda` is variants[0]'s.
  std::vector<CudaVariant> cudaVariants;
  sym::Expr cudaMeasure;
  bool isExtern() const { return kernels.size() == 1 && kernels[0]->kind == KernelKind::Extern; }
  bool isCall() const { return kernels.size() == 1 && kernels[0]->kind == KernelKind::Call; }
  bool isAttention() const {
    return kernels.size() == 1 && kernels[0]->kind == KernelKind::Attention;
  }
};

/// When a run-time shape value becomes known. Derived from what its producer reads
/// (shapeValuePhase), never chosen by the lowering.
enum class ValuePhase {
  // Its value kernel reads only the program's inputs (and values known before the run):
  // bind_shapes (a sub-program: its function's first statements) computes it on the host, so
  // every shape is known before any kernel runs. Checked against [lo, limit] like input dims.
  BeforeRun,
  // Computed during the run: known once its producer ran (program order). Buffers shaped by
  // it are allocated for `bound`; later kernels see the actual value.
  InOrder
};

/// One shape value known only at run time: a symbol whose value a kernel computes. It is
/// produced either by element `element` of a value kernel's int64 output
/// (Kernel::valueOut), or stored through a pointer by an extern call
/// (ExternArg::SymbolOut: NonZero's count) or by a Loop (ControlFlow::iterations).
/// Specialisation is not a run-time value: it is a compile-time constant checked by a
/// shape guard (ir::ShapeGuard).
struct RuntimeShapeValue {
  enum class Producer { ValueKernel, SymbolOut };
  sym::Expr symbol;
  Producer producer = Producer::ValueKernel;
  int64_t element = 0; // ValueKernel: the output element holding it
  ValuePhase phase = ValuePhase::BeforeRun;
  // The value is checked at run time to lie in [lo, limit] before anything uses it (a
  // SymbolOut is not checked: the shim keeps it within its bound). `limit` may use earlier
  // InOrder values.
  int64_t lo = 0;
  sym::Expr limit;
  // InOrder: what buffers are sized for, in symbols known before the run.
  sym::Expr bound;
  // Non-empty: the value is element `element` of this model input, as given (a Reshape
  // target fed as an input); the range check names the input instead of the symbol.
  std::string input;
};

struct Program {
  std::vector<std::unique_ptr<Buffer>> buffers;
  std::vector<std::unique_ptr<Kernel>> kernels; // program order
  /// Every run-time shape value, in the order they are produced.
  std::vector<RuntimeShapeValue> shapeValues;
  std::vector<Buffer *> inputs, outputs, constants;
  /// The model's name of each output (a sequence output is several: `<name>.K`).
  std::vector<std::string> outputNames;
  std::vector<KernelGroup> groups; // set by sched::formGroups; execution order
  int nextSite = 0;
  // Every ControlFlow lowered into this program, dead or not: `constants` may point at
  // their sub-programs' buffers.
  std::vector<std::shared_ptr<ControlFlow>> calls;

  Buffer *newBuffer(DType t, ir::Shape shape, BufferKind kind, const std::string &hint);
  Kernel *newKernel(KernelKind k);
  /// The run-time shape value of symbol s, or nullptr.
  const RuntimeShapeValue *shapeValue(sym::Expr s) const;
  /// Whether s is a value computed during the run (ValuePhase::InOrder).
  bool isInOrderValue(sym::Expr s) const;
  /// Whether k is a value kernel that runs before the run (in bind_shapes, in no group).
  bool runsBeforeRun(const Kernel &k) const;
};

/// The one rule for when the values of a value kernel (Pointwise, Kernel::valueOut) become
/// known: before the run when its body reads only p's inputs and symbols known before the
/// run (no InOrder value); otherwise in program order. Values stored through a pointer
/// (SymbolOut) are always InOrder.
ValuePhase shapeValuePhase(const Program &p, const Kernel &valueKernel);
/// The rule itself, for a value not yet in a kernel: whether `value` reads only p's inputs
/// and symbols known before the run.
bool knownBeforeRun(const Program &p, const VRef &value);

std::string dump(const Program &p);

/// Product of dims [begin, end) of shape (1 for an empty range).
sym::Expr product(sym::Context &ctx, const ir::Shape &shape, size_t begin = 0,
                  size_t end = SIZE_MAX);

/// Row-major linear offset of idx in shape (how every buffer is indexed).
sym::Expr linearIndex(sym::Context &ctx, const std::vector<sym::Expr> &idx, const ir::Shape &shape);

} // namespace kiln::loop
