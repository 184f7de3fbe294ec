#include "aot/compile.h"
#include "cli/commands.h"
#include "support/error.h"

#include <iostream>
#include <regex>

namespace kiln::cli {

namespace {

/// "a,b,c" → {"a", "b", "c"}; "" → {}.
std::vector<std::string> splitCommas(const std::string &text) {
  std::vector<std::string> parts;
  for (size_t at = 0; !text.empty() && at <= text.size();) {
    size_t comma = text.find(',', at);
    if (comma == std::string::npos) comma = text.size();
    parts.push_back(text.substr(at, comma - at));
    at = comma + 1;
  }
  return parts;
}

} // namespace

void addCompileCommand(CLI::App &app) {
  auto *cmd = app.add_subcommand("compile", "compile an ONNX model to a shared library");
  auto opts = std::make_shared<aot::CompileOptions>();
  auto dynamics = std::make_shared<std::vector<std::string>>();
  auto weights = std::make_shared<std::string>("embedded");
  cmd->add_option("model", opts->modelPath, "model.onnx")->required();
  cmd->add_option("-o,--output", opts->outputPath, "output shared library")->required();
  cmd->add_option("--dynamic", *dynamics, "make a named dim symbolic: name=min:max");
  auto seqLens = std::make_shared<std::vector<std::string>>();
  auto optionals = std::make_shared<std::vector<std::string>>();
  auto shapes = std::make_shared<std::vector<std::string>>();
  cmd->add_option("--sequence-length", *seqLens,
                  "length of a sequence-typed input: name=N; its items become tensor inputs "
                  "name.0 ... name.<N-1>");
  cmd->add_option("--optional", *optionals,
                  "an optional-typed input: name=present (default: a tensor or sequence input) "
                  "or name=absent (no input; OptionalHasElement is false)");
  cmd->add_option("--input-shape", *shapes,
                  "shape of an input, replacing the model's: name=D0,D1,... (integers or dim "
                  "names; nothing after '=' for a scalar); name.K for one sequence item, name "
                  "for all");
  cmd->footer("Sequence and optional graph values cross the C API as tensors. A sequence input or "
              "output\n`s` of N items is the tensors s.0 ... s.<N-1> (an output's N is fixed when "
              "compiling).\nAn optional-typed output `o` is reported as a bool scalar output "
              "o.has_value, followed\nby its element's tensors when it holds one.");
  cmd->add_flag("--print-after-all", opts->printAfterAll, "dump the IR after every pass");
  cmd->add_flag("--all-dims-dynamic", opts->import.allInputDimsDynamic,
                "make every input dim symbolic");
  cmd->add_option("--weights", *weights, "embedded (default) or external")
      ->check(CLI::IsMember({"embedded", "external"}));
  cmd->add_option("--cache-dir", opts->cacheDir, "object cache (default ~/.cache/kiln)");
  cmd->add_option("-j,--jobs", opts->jobs, "parallel compiler processes");
  cmd->add_flag("--keep-sources", opts->keepSources, "keep generated sources in <output>.src/");
  auto device = std::make_shared<std::string>("cpu");
  auto archs = std::make_shared<std::string>("sm_80,sm_90");
  auto tf32 = std::make_shared<bool>(false);
  cmd->add_option("--device", *device, "cpu (default) or cuda: where model.so runs")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--cuda-arch", *archs,
                  "with --device cuda: GPU architectures of the fatbin, e.g. sm_80,sm_90 "
                  "(SASS for each, PTX of the last)");
  cmd->add_flag("--allow-tf32", *tf32,
                "with --device cuda: let fp32 MatMul/Conv use TF32 tensor cores (off by default: "
                "results match PyTorch with TF32 off)");
  auto hostArch = std::make_shared<std::string>();
  cmd->add_option("--host-arch", *hostArch,
                  "-march of the model's host code (default: native for cpu, x86-64-v3 for "
                  "cuda); e.g. x86-64-v2 for a model.so that loads on any recent x86-64");
  cmd->callback([=] {
    if (!hostArch->empty() && !std::regex_match(*hostArch, std::regex("[A-Za-z0-9_.-]+")))
      fail("--host-arch '{}': expected a -march name such as x86-64-v2 or native", *hostArch);
    if (*device == "cuda") {
      std::vector<std::string> list = splitCommas(*archs);
      std::regex arch("sm_[0-9]+[a-z]?");
      for (const std::string &a : list)
        if (!std::regex_match(a, arch))
          fail("--cuda-arch '{}': expected a list like sm_80,sm_90", *archs);
      if (list.empty()) fail("--cuda-arch is empty: expected a list like sm_80,sm_90");
      opts->target = sched::Target::cuda(list);
      opts->target.allowTf32 = *tf32;
    } else if (*tf32) {
      fail("--allow-tf32 applies only with --device cuda");
    }
    std::regex spec("([^=]+)=([0-9]+):([0-9]+)");
    for (const std::string &d : *dynamics) {
      std::smatch m;
      if (!std::regex_match(d, m, spec))
        fail("--dynamic '{}': expected name=min:max, e.g. batch=1:64", d);
      frontend::DynamicDim dim{std::stoll(m[2]), std::stoll(m[3])};
      if (dim.min < 0 || dim.min > dim.max) fail("--dynamic '{}': min must be >= 0 and <= max", d);
      opts->import.dynamic[m[1]] = dim;
    }
    std::regex named("([^=]+)=(.*)");
    for (const std::string &d : *seqLens) {
      std::smatch m;
      if (!std::regex_match(d, m, named) || !std::regex_match(m[2].str(), std::regex("[0-9]+")))
        fail("--sequence-length '{}': expected name=N, e.g. inputs=3", d);
      opts->import.sequenceLengths[m[1]] = std::stoll(m[2]);
    }
    for (const std::string &d : *optionals) {
      std::smatch m;
      if (!std::regex_match(d, m, named) || (m[2] != "present" && m[2] != "absent"))
        fail("--optional '{}': expected name=present or name=absent", d);
      opts->import.optionalPresent[m[1]] = m[2] == "present";
    }
    for (const std::string &d : *shapes) {
      std::smatch m;
      if (!std::regex_match(d, m, named) ||
          !std::regex_match(m[2].str(), std::regex("([A-Za-z0-9_]+(,[A-Za-z0-9_]+)*)?")))
        fail("--input-shape '{}': expected name=D0,D1,... (integers or dim names), e.g. x=2,3", d);
      opts->import.inputShapes[m[1]] = splitCommas(m[2]);
    }
    if (!hostArch->empty()) opts->target.hostArch = *hostArch;
    opts->externalWeights = *weights == "external";
    aot::CompileStats st = aot::compileModel(*opts);
    std::cerr << fmt::format("kiln: wrote {} ({} kernels, {} extern calls, {} sources, {} cached) "
                             "in {:.2f} s\n",
                             opts->outputPath, st.kernels, st.externs, st.sources, st.cacheHits,
                             st.seconds);
  });
}

} // namespace kiln::cli
