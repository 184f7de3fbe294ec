// Fuzz target 5: code injection through names. The fuzz bytes become the names (inputs,
// outputs, dim_param, initializer, intermediate values, nodes, subgraphs, the graph) of a
// small valid model (x + W → Relu → If(cond){Neg}{Identity} → y, or without the If). kiln
// generates its sources twice: with those names and with harmless placeholders. Then:
//  - with comments and literals blanked out, both token streams are identical (no name
//    escaped a literal or a comment, none became code);
//  - every literal of the hostile version decodes to the placeholder version's literal with
//    each placeholder replaced by its name, byte for byte (the one escaper `cString`);
//  - each comment is the placeholder comment with names passed through `commentText`;
//  - every host C++ file passes `g++ -fsyntax-only` with its own flags plus -trigraphs
//    (so a `??/` cannot splice a line even where trigraphs are on).
// Input: byte 0 holds options (bit 0: CUDA target, whose .cu and wrapper text are checked
// too, the wrapper compiled; bit 1: no If; bit 2: also a StringNormalizer whose stopwords
// are names), then names, each a length byte and that many bytes. Missing names get
// defaults; value names that collide get a suffix. Every literal is read by the runtime as
// a C string, so none may hold a NUL byte (kiln must refuse such a name instead).
#include "c_source_scan.h"
#include "codegen/common/c_printer.h"
#include "codegen/wrapper/wrapper.h"
#include "frontend/onnx/importer.h"
#include "lower/lowerer.h"
#include "passes/passes.h"
#include "sched/schedule.h"
#include "support/error.h"

#include <onnx/onnx_pb.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <unordered_set>
#include <vector>

extern char **environ;

using namespace kiln;

namespace {

// Value names up to kOutput (kDim is the dim_param), then node and graph names.
enum Slot {
  kInput,
  kDim,
  kCond,
  kInit,
  kSum,
  kMid,
  kThenOut,
  kElseOut,
  kOutput,
  kAddNode,
  kReluNode,
  kIfNode,
  kNegNode,
  kIdNode,
  kThenGraph,
  kElseGraph,
  kGraph,
  kStrInput, // with option bit 2: s → StringNormalizer(stopwords) → s_out beside the rest
  kStrOutput,
  kStrNode,
  kStopword0, // attribute strings: stopwords reach the wrapper as a table of literals
  kStopword1,
  kSlots
};
constexpr bool isValueSlot(int s) {
  return (s <= kOutput && s != kDim) || s == kStrInput || s == kStrOutput;
}
using Names = std::array<std::string, kSlots>;

struct Case {
  bool cuda = false, withIf = true, withStrings = false;
  Names names;
};

Case decode(const uint8_t *data, size_t size) {
  Case c;
  size_t at = 0;
  if (size > 0) {
    c.cuda = data[0] & 1;
    c.withIf = !(data[0] & 2);
    c.withStrings = data[0] & 4;
    at = 1;
  }
  for (int s = 0; s < kSlots; ++s) {
    if (at < size) {
      size_t want = data[at++];
      size_t len = std::min(want, size - at);
      c.names[s].assign(reinterpret_cast<const char *>(data + at), len);
      at += len;
    } else {
      c.names[s] = "n" + std::to_string(s);
    }
  }
  // Distinct value names (ONNX is SSA); the rest of the name stays as the fuzzer made it.
  std::set<std::string> seen;
  for (int s = 0; s < kSlots; ++s) {
    if (!isValueSlot(s)) continue;
    while (!seen.insert(c.names[s]).second)
      c.names[s] += "#" + std::to_string(s);
  }
  return c;
}

Names placeholders() {
  Names p;
  for (int s = 0; s < kSlots; ++s)
    p[s] = "QZ" + std::to_string(10 + s) + "ZQ"; // same length, never a substring of another
  return p;
}

onnx::ValueInfoProto valueInfo(const std::string &name, int type, const std::string &dim) {
  onnx::ValueInfoProto v;
  v.set_name(name);
  auto *t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(type);
  if (type == onnx::TensorProto::STRING) return v; // the caller's shape, or none
  auto *shape = t->mutable_shape();
  if (type == onnx::TensorProto::BOOL) return v; // a scalar
  shape->add_dim()->set_dim_param(dim);
  shape->add_dim()->set_dim_value(3);
  return v;
}

void addNode(onnx::GraphProto &g, const char *op, std::vector<std::string> in,
             const std::string &out, const std::string &name) {
  auto *n = g.add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (auto &i : in)
    n->add_input(i);
  n->add_output(out);
}

std::string modelBytes(const Case &c, const Names &n) {
  using TP = onnx::TensorProto;
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto *opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(17);
  onnx::GraphProto &g = *m.mutable_graph();
  g.set_name(n[kGraph]);
  *g.add_input() = valueInfo(n[kInput], TP::FLOAT, n[kDim]);
  if (c.withIf) *g.add_input() = valueInfo(n[kCond], TP::BOOL, "");
  *g.add_output() = valueInfo(n[kOutput], TP::FLOAT, n[kDim]);
  TP &w = *g.add_initializer();
  if (c.withStrings) {
    onnx::ValueInfoProto in = valueInfo(n[kStrInput], TP::STRING, "");
    in.mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(4);
    *g.add_input() = in;
    *g.add_output() = valueInfo(n[kStrOutput], TP::STRING, ""); // shape: from the op
    addNode(g, "StringNormalizer", {n[kStrInput]}, n[kStrOutput], n[kStrNode]);
    auto *stop = g.mutable_node(g.node_size() - 1)->add_attribute();
    stop->set_name("stopwords");
    stop->set_type(onnx::AttributeProto::STRINGS);
    stop->add_strings(n[kStopword0]);
    stop->add_strings(n[kStopword1]);
  }
  w.set_name(n[kInit]);
  w.set_data_type(TP::FLOAT);
  w.add_dims(3);
  for (float f : {1.0f, -2.0f, 3.0f})
    w.add_float_data(f);
  addNode(g, "Add", {n[kInput], n[kInit]}, n[kSum], n[kAddNode]);
  if (!c.withIf) {
    addNode(g, "Relu", {n[kSum]}, n[kMid], n[kReluNode]);
    addNode(g, "Neg", {n[kMid]}, n[kOutput], n[kNegNode]);
    return m.SerializeAsString();
  }
  addNode(g, "Relu", {n[kSum]}, n[kMid], n[kReluNode]);
  auto branch = [&](const char *op, Slot out, Slot node, Slot graph) {
    onnx::GraphProto b;
    b.set_name(n[graph]);
    addNode(b, op, {n[kMid]}, n[out], n[node]);
    *b.add_output() = valueInfo(n[out], TP::FLOAT, n[kDim]);
    return b;
  };
  auto *iff = g.add_node();
  iff->set_op_type("If");
  iff->set_name(n[kIfNode]);
  iff->add_input(n[kCond]);
  iff->add_output(n[kOutput]);
  auto *thenAttr = iff->add_attribute();
  thenAttr->set_name("then_branch");
  thenAttr->set_type(onnx::AttributeProto::GRAPH);
  *thenAttr->mutable_g() = branch("Neg", kThenOut, kNegNode, kThenGraph);
  auto *elseAttr = iff->add_attribute();
  elseAttr->set_name("else_branch");
  elseAttr->set_type(onnx::AttributeProto::GRAPH);
  *elseAttr->mutable_g() = branch("Identity", kElseOut, kIdNode, kElseGraph);
  return m.SerializeAsString();
}

/// kiln's pipeline up to the generated sources (aot::compileModel without the build).
codegen::GeneratedModel generate(const Case &c, const Names &n) {
  sym::Context ctx;
  frontend::ImportOptions opts;
  opts.dynamic[n[kDim]] = {1, 16};
  auto graph = frontend::importModelBytes(modelBytes(c, n), "/nonexistent-kiln-fuzz-dir",
                                          "names.onnx", ctx, opts);
  sched::Target target = c.cuda ? sched::Target::cuda({"sm_90"}) : sched::Target::cpu();
  if (!c.cuda) target.hostArch = "x86-64-v2";
  passes::optimizeGraph(*graph, nullptr, target);
  loop::Program prog;
  lower::Lowerer lowerer(*graph, prog, target);
  lowerer.lowerGraph();
  sched::scheduleProgram(prog, ctx, target);
  auto ops = codegen::makeDeviceOps(target);
  codegen::BuildStamp stamp{target.hostArch, "sse3,ssse3", "fuzz"};
  return codegen::generateModel(*graph, prog, *ops, 64, stamp);
}

/// `s` with each placeholder replaced by its name (one pass: a name may look like a
/// placeholder), passed through commentText for a comment.
std::string withNames(const std::string &s, const Names &from, const Names &to, bool comment) {
  std::string r;
  for (size_t i = 0; i < s.size();) {
    int k = 0;
    while (k < kSlots && s.compare(i, from[k].size(), from[k]) != 0)
      ++k;
    if (k == kSlots) {
      r += s[i++];
      continue;
    }
    r += comment ? codegen::commentText(to[k]) : to[k];
    i += from[k].size();
  }
  return r;
}

std::string printable(const std::string &s) {
  std::string r;
  for (unsigned char c : s)
    r += c >= 0x20 && c < 0x7f && c != '\\'
             ? std::string(1, static_cast<char>(c))
             : "\\x" + std::string(1, "0123456789abcdef"[c >> 4]) + "0123456789abcdef"[c & 15];
  return r;
}

[[noreturn]] void finding(const std::string &file, const std::string &what) {
  std::fprintf(stderr, "names: %s: %s\n", file.c_str(), printable(what).c_str());
  std::abort();
}

/// Runs g++ -fsyntax-only on `text` with `flags`; aborts with its output on failure.
void syntaxCheck(const codegen::SourceFile &f) {
  static std::unordered_set<std::string> passed; // identical text: checked already
  if (passed.count(f.text)) return;
  static const std::string dir = [] {
    std::string d =
        std::filesystem::temp_directory_path() / ("kiln-fuzz-names-" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  std::string path = dir + "/" + f.name, log = dir + "/cc.log";
  std::ofstream(path, std::ios::binary) << f.text;
  std::vector<std::string> args = {"g++", "-fsyntax-only", "-trigraphs", "-Wno-trigraphs",
                                   "-I" KILN_FUZZ_INCLUDE_DIR};
  for (const auto &flag : f.flags)
    if (flag.rfind("-O", 0) != 0) args.push_back(flag);
  args.push_back(path);
  std::vector<char *> argv;
  for (auto &a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t io;
  posix_spawn_file_actions_init(&io);
  posix_spawn_file_actions_addopen(&io, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid;
  int status = -1;
  int err = posix_spawnp(&pid, "g++", &io, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&io);
  if (err != 0) {
    std::fprintf(stderr, "names: cannot start g++: %s\n", std::strerror(err));
    std::abort();
  }
  // libFuzzer's -timeout alarm interrupts the wait: wait again.
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) {
      std::fprintf(stderr, "names: waitpid: %s\n", std::strerror(errno));
      std::abort();
    }
  if (status != 0) {
    std::ifstream in(log);
    std::string err((std::istreambuf_iterator<char>(in)), {});
    std::fprintf(stderr, "g++ -fsyntax-only %s failed:\n%s\n", path.c_str(),
                 err.substr(0, 4000).c_str());
    finding(f.name, "generated source does not compile (kept in " + path + ")");
  }
  passed.insert(f.text);
}

void compare(const codegen::SourceFile &safe, const codegen::SourceFile &hostile,
             const Names &placeholder, const Names &names) {
  fuzz::ScannedSource a = fuzz::scanSource(safe.text), b = fuzz::scanSource(hostile.text);
  if (!a.error.empty()) finding(safe.name, "placeholder source does not lex: " + a.error);
  if (!b.error.empty()) finding(hostile.name, "source does not lex: " + b.error);
  if (a.tokens != b.tokens) {
    size_t i = 0;
    while (i < a.tokens.size() && i < b.tokens.size() && a.tokens[i] == b.tokens[i])
      ++i;
    finding(hostile.name, "code differs from the placeholder version at token " +
                              std::to_string(i) + ": '" +
                              (i < b.tokens.size() ? b.tokens[i] : "<end>") + "' for '" +
                              (i < a.tokens.size() ? a.tokens[i] : "<end>") + "'");
  }
  for (size_t i = 0; i < a.literals.size(); ++i) {
    if (b.literals[i].find('\0') != std::string::npos)
      finding(hostile.name, "literal " + std::to_string(i) + " holds a NUL byte, which the " +
                                "runtime's C strings cut off: '" + b.literals[i] + "'");
    std::string want = withNames(a.literals[i], placeholder, names, false);
    if (b.literals[i] != want)
      finding(hostile.name, "literal " + std::to_string(i) + " decodes to '" + b.literals[i] +
                                "', want '" + want + "'");
  }
  // A CUDA kernel's comment ends with its tuning key: 16 hex digits hashed from the loop IR,
  // whose symbolic shapes carry the dim_param names. It differs between the two builds but
  // holds no byte of any name, so it is compared as "some key" only.
  static const std::regex key(R"( \(tuning key [0-9a-f]{16}\)$)");
  auto keyless = [](const std::string &c) { return std::regex_replace(c, key, " (tuning key)"); };
  for (size_t i = 0; i < a.comments.size(); ++i) {
    std::string want = keyless(withNames(a.comments[i], placeholder, names, true));
    if (keyless(b.comments[i]) != want)
      finding(hostile.name,
              "comment " + std::to_string(i) + " is '" + b.comments[i] + "', want '" + want + "'");
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Case c = decode(data, size);
  const Names placeholder = placeholders();
  codegen::GeneratedModel safe, hostile;
  static const bool verbose = std::getenv("KILN_FUZZ_NAMES_VERBOSE") != nullptr;
  try {
    safe = generate(c, placeholder);
  } catch (const UserError &e) {
    // The placeholder model is valid; only a target that cannot run it refuses.
    if (verbose) std::fprintf(stderr, "  placeholder model refused: %s\n", e.what());
    return 0;
  }
  try {
    hostile = generate(c, c.names);
  } catch (const UserError &e) {
    // A name kiln refuses (an empty value name, a NUL byte) is fine.
    if (verbose) std::fprintf(stderr, "  refused: %s\n", printable(e.what()).c_str());
    return 0;
  }
  if (safe.sources.size() != hostile.sources.size())
    finding("model", "the names changed the number of source files");
  for (size_t i = 0; i < safe.sources.size(); ++i) {
    compare(safe.sources[i], hostile.sources[i], placeholder, c.names);
    bool compile = hostile.sources[i].tool == codegen::SourceTool::HostCxx;
    if (compile) syntaxCheck(hostile.sources[i]);
    if (verbose)
      std::fprintf(stderr, "  %s: %zu bytes, checked%s\n", hostile.sources[i].name.c_str(),
                   hostile.sources[i].text.size(), compile ? " and compiled" : "");
  }
  return 0;
}
