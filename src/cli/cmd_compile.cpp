#include "aot/compile.h"
#include "cli/commands.h"
#include "support/error.h"

#include <iostream>
#include <regex>

namespace kiln::cli {

void addCompileCommand(CLI::App &app) {
  auto *cmd = app.add_subcommand("compile", "compile an ONNX model to a shared library");
  auto opts = std::make_shared<aot::CompileOptions>();
  auto dynamics = std::make_shared<std::vector<std::string>>();
  auto weights = std::make_shared<std::string>("embedded");
  cmd->add_option("model", opts->modelPath, "model.onnx")->required();
  cmd->add_option("-o,--output", opts->outputPath, "output shared library")->required();
  cmd->add_option("--dynamic", *dynamics, "make a named dim symbolic: name=min:max");
  cmd->add_flag("--print-after-all", opts->printAfterAll, "dump the IR after every pass");
  cmd->add_flag("--all-dims-dynamic", opts->import.allInputDimsDynamic,
                "make every input dim symbolic");
  cmd->add_option("--weights", *weights, "embedded (default) or external")
      ->check(CLI::IsMember({"embedded", "external"}));
  cmd->add_option("--cache-dir", opts->cacheDir, "object cache (default ~/.cache/kiln)");
  cmd->add_option("-j,--jobs", opts->jobs, "parallel compiler processes");
  cmd->add_flag("--keep-sources", opts->keepSources, "keep generated sources in <output>.src/");
  cmd->callback([=] {
    std::regex spec("([^=]+)=([0-9]+):([0-9]+)");
    for (const std::string &d : *dynamics) {
      std::smatch m;
      if (!std::regex_match(d, m, spec))
        fail("--dynamic '{}': expected name=min:max, e.g. batch=1:64", d);
      frontend::DynamicDim dim{std::stoll(m[2]), std::stoll(m[3])};
      if (dim.min < 0 || dim.min > dim.max) fail("--dynamic '{}': min must be >= 0 and <= max", d);
      opts->import.dynamic[m[1]] = dim;
    }
    opts->externalWeights = *weights == "external";
    aot::CompileStats st = aot::compileModel(*opts);
    std::cerr << fmt::format("kiln: wrote {} ({} kernels, {} extern calls, {} sources, {} cached) "
                             "in {:.2f} s\n",
                             opts->outputPath, st.kernels, st.externs, st.sources, st.cacheHits,
                             st.seconds);
  });
}

} // namespace kiln::cli
