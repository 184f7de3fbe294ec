// `kiln inspect`: what an ONNX model holds (inputs, ops, support) or what a compiled model.so
// was built for (device, CPU, ABI and shim level, kernels, inputs with dim ranges).
// `kiln ops`: the op coverage table (docs/ops.md is generated from it).
#include "cli/commands.h"
#include "cli/model_lib.h"
#include "cli/op_notes.h"
#include "frontend/onnx/importer.h"
#include "lower/lowerer.h"
#include "lower/ml_common.h"
#include "passes/passes.h"
#include "runtime/cpu_features.h"
#include "support/error.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

namespace kiln::cli {

namespace {

using nlohmann::json;

void addOpsCommand(CLI::App &app) {
  auto *cmd = app.add_subcommand("ops", "print the supported-op table as markdown");
  cmd->callback([] {
    std::map<std::string, const lower::OpInfo *> sorted;
    for (const lower::OpInfo &o : lower::opRegistry())
      sorted[o.name] = &o;
    std::cout << "| op | opsets | dtypes | CPU | CUDA | notes |\n|---|---|---|---|---|---|\n";
    for (auto &[name, o] : sorted) {
      OpNote note = opNote(name);
      std::cout << fmt::format("| {} | {}–{} | {} | yes | {} | {} |\n", name, o->sinceOpset,
                               ir::kMaxOnnxOpset, note.dtypes.empty() ? "all" : note.dtypes,
                               note.gpu.empty() ? "yes" : note.gpu,
                               note.notes.empty() ? "generated kernel" : note.notes);
    }
    for (const lower::OpInfo &o : lower::mlOpRegistry()) {
      OpNote note = opNote(o.name);
      std::cout << fmt::format(
          "| ai.onnx.ml {} | ml {}–{} | {} | yes | {} | {} |\n", o.name, o.sinceOpset,
          lower::kMaxOnnxMlOpset, note.dtypes.empty() ? "numbers" : note.dtypes,
          note.gpu.empty() ? "generated kernels (not yet run on a GPU)" : note.gpu,
          note.notes.empty() ? "generated kernels" : note.notes);
    }
  });
}

json ioJson(const kiln_model_desc_v1 &d, const kiln_io_desc_v1 &io) {
  json dims = json::array();
  for (int32_t k = 0; k < io.ndim; ++k) {
    int32_t s = io.dim_symbol ? io.dim_symbol[k] : -1;
    if (io.dims[k] >= 0)
      dims.push_back(io.dims[k]);
    else if (s >= 0 && s < d.num_symbols)
      dims.push_back(
          {{"name", d.symbols[s].name}, {"min", d.symbols[s].min}, {"max", d.symbols[s].max}});
    else
      dims.push_back("derived");
  }
  DLDataType t = io.dtype;
  return {{"name", io.name}, {"dtype", dtypeText(t)}, {"dims", dims}};
}

std::string dimsText(const json &dims) {
  std::string s;
  for (const json &d : dims) {
    if (!s.empty()) s += ", ";
    if (d.is_number())
      s += std::to_string(d.get<int64_t>());
    else if (d.is_object())
      s += fmt::format("{}={}..{}", d["name"].get<std::string>(), d["min"].get<int64_t>(),
                       d["max"].get<int64_t>());
    else
      s += "derived";
  }
  return "[" + s + "]";
}

/// A compiled model: everything comes from its descriptor (no container is created, so a
/// model for another CPU or a GPU can be inspected anywhere).
void inspectLibrary(const std::string &path, bool asJson) {
  ModelLib lib(path);
  const kiln_model_desc_v1 *d = lib.descriptor();
  if (!d) fail("'{}' exports the kiln API but no descriptor; it was not built by kiln", path);
  bool hasBuildRecord =
      d->struct_size >= offsetof(kiln_model_desc_v1, kiln_version) + sizeof(d->kiln_version);
  json j;
  j["model"] = path;
  j["device"] = lib.modelDevice();
  if (lib.modelDevice() == "cuda" && d->cuda_arch) j["cuda_arch"] = d->cuda_arch;
  j["abi_version"] = d->abi_version;
  j["shim_level"] = d->shim_version;
  if (hasBuildRecord) {
    j["cpu_isa"] = d->cpu_isa ? d->cpu_isa : "";
    j["cpu_features"] = d->cpu_features ? d->cpu_features : "";
    j["kernels"] = d->num_kernels;
    j["extern_calls"] = d->num_extern_calls;
    j["kiln_version"] = d->kiln_version ? d->kiln_version : "";
    std::string missing = cpu::missingFeatures(d->cpu_features);
    j["runs_on_this_cpu"] = missing.empty();
    if (!missing.empty()) j["missing_cpu_features"] = missing;
  }
  const char *weightsError =
      lib.kiln_model_weights_error ? lib.kiln_model_weights_error() : nullptr;
  j["weights"] = d->weights         ? "embedded"
                 : weightsError     ? "embedded, not loaded"
                 : d->num_constants ? "external"
                                    : "none";
  if (weightsError) j["weights_error"] = weightsError;
  j["constants"] = d->num_constants;
  for (int32_t i = 0; i < d->num_inputs; ++i)
    j["inputs"].push_back(ioJson(*d, d->inputs[i]));
  for (int32_t i = 0; i < d->num_outputs; ++i)
    j["outputs"].push_back(ioJson(*d, d->outputs[i]));
  if (asJson) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("model:        {} (compiled)\n", path);
  std::cout << fmt::format("device:       {}{}\n", j["device"].get<std::string>(),
                           j.contains("cuda_arch") ? " (" + j["cuda_arch"].get<std::string>() + ")"
                                                   : "");
  if (hasBuildRecord) {
    std::cout << fmt::format("built for:    CPU {} ({})\n", j["cpu_isa"].get<std::string>(),
                             j["cpu_features"].get<std::string>().empty()
                                 ? "baseline x86-64"
                                 : j["cpu_features"].get<std::string>());
    std::cout << fmt::format("this CPU:     {}\n",
                             j["runs_on_this_cpu"].get<bool>()
                                 ? "can run it"
                                 : "cannot run it (lacks " +
                                       j["missing_cpu_features"].get<std::string>() + ")");
    std::cout << fmt::format("kernels:      {} generated, {} library calls\n", d->num_kernels,
                             d->num_extern_calls);
    std::cout << fmt::format("compiled by:  kiln {}\n", j["kiln_version"].get<std::string>());
  } else {
    std::cout << "built for:    unknown (compiled before kiln recorded the CPU)\n";
  }
  std::cout << fmt::format("ABI:          {} (shim level {})\n", d->abi_version, d->shim_version);
  std::cout << fmt::format("weights:      {} ({} constants){}\n", j["weights"].get<std::string>(),
                           d->num_constants, weightsError ? std::string(": ") + weightsError : "");
  for (const char *kind : {"inputs", "outputs"})
    for (const json &io : j[kind])
      std::cout << fmt::format(
          "  {} {}: {} {}\n", kind == std::string("inputs") ? "input " : "output",
          io["name"].get<std::string>(), io["dtype"].get<std::string>(), dimsText(io["dims"]));
}

/// An ONNX model: inputs, ops with support, outputs after shape inference. Returns the
/// number of unsupported op types.
int inspectOnnx(const std::string &path, bool asJson) {
  sym::Context ctx;
  auto g = frontend::importModel(path, ctx, {});
  json j;
  j["model"] = path;
  for (const ir::Value *v : g->inputs)
    j["inputs"].push_back({{"name", v->name},
                           {"dtype", dtypeName(v->dtype)},
                           {"shape", ir::shapeToString(v->shape)}});
  std::map<std::string, int> counts, opsets;
  // Ops inside subgraphs (If/Loop/Scan bodies) count too.
  std::function<void(const ir::Graph &)> countOps = [&](const ir::Graph &graph) {
    for (auto &n : graph.nodes) {
      counts[n->op]++;
      opsets[n->op] = n->opset;
      for (auto &[k, a] : n->attrs)
        if (a.kind == ir::Attribute::Kind::Graph && a.graph) countOps(*a.graph);
    }
  };
  countOps(*g);
  int unsupported = 0;
  for (auto &[op, c] : counts) {
    bool ok = lower::findOp(op) || lower::findMlOp(op);
    unsupported += !ok;
    j["ops"].push_back({{"op", op}, {"count", c}, {"opset", opsets[op]}, {"supported", ok}});
  }
  try {
    passes::inferAndFold(*g);
    for (const ir::Value *v : g->outputs)
      j["outputs"].push_back({{"name", v->name},
                              {"dtype", dtypeName(v->dtype)},
                              {"shape", ir::shapeToString(v->shape)}});
  } catch (const UserError &e) {
    j["shape_inference_error"] = e.what();
  }
  j["unsupported_op_types"] = unsupported;
  if (asJson) {
    std::cout << j.dump(2) << "\n";
    return unsupported;
  }
  std::cout << "model: " << path << "\n";
  for (const json &v : j["inputs"])
    std::cout << fmt::format("  input  {}: {} {}\n", v["name"].get<std::string>(),
                             v["dtype"].get<std::string>(), v["shape"].get<std::string>());
  std::cout << "ops:\n";
  for (const json &o : j["ops"])
    std::cout << fmt::format("  {:<24} x{:<4} opset {:<3} {}\n", o["op"].get<std::string>(),
                             o["count"].get<int>(), o["opset"].get<int>(),
                             o["supported"].get<bool>() ? "supported" : "NOT SUPPORTED");
  for (const json &v : j["outputs"])
    std::cout << fmt::format("  output {}: {} {}\n", v["name"].get<std::string>(),
                             v["dtype"].get<std::string>(), v["shape"].get<std::string>());
  if (j.contains("shape_inference_error"))
    std::cout << "shape inference stopped: " << j["shape_inference_error"].get<std::string>()
              << "\n";
  std::cout << (unsupported ? fmt::format("{} op type(s) not supported\n", unsupported)
                            : std::string("all ops supported\n"));
  return unsupported;
}

bool isElf(const std::string &path) {
  char magic[4] = {};
  std::ifstream in(path, std::ios::binary);
  in.read(magic, 4);
  return in && magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' && magic[3] == 'F';
}

} // namespace

void addInspectCommand(CLI::App &app) {
  addOpsCommand(app);
  auto *cmd = app.add_subcommand(
      "inspect", "describe an ONNX model (inputs, ops, support) or a compiled model.so (device, "
                 "CPU, inputs and dim ranges, kernels)");
  auto path = std::make_shared<std::string>();
  auto asJson = std::make_shared<bool>(false);
  cmd->add_option("model", *path, "model.onnx or a compiled model.so")->required();
  cmd->add_flag("--json", *asJson, "print the description as JSON");
  cmd->footer("Exit status 3 when an ONNX model has ops kiln does not support.");
  cmd->callback([=] {
    std::error_code ec;
    if (std::filesystem::is_directory(*path, ec))
      fail("'{}' is a directory; give a model.onnx or model.so file", *path);
    if (!std::filesystem::exists(*path, ec)) fail("'{}': no such file", *path);
    if (isElf(*path)) {
      inspectLibrary(*path, *asJson);
      return;
    }
    if (inspectOnnx(*path, *asJson) > 0) throw ExitStatus{kExitUnsupported};
  });
}

} // namespace kiln::cli
