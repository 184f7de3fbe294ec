// The `kiln` command: compile, run, bench, inspect, ops, cache.
#include "aot/install_paths.h"
#include "aot/subprocess.h"
#include "cli/commands.h"
#include "kiln/model.h"
#include "kiln/shim.h"
#include "support/error.h"

#include <csignal>
#include <iostream>
#include <map>

namespace {

/// A flag given twice is harmless but likely a slip: say so. (An option taking a value given
/// twice is an error: MultiOptionPolicy::Throw below.)
void warnRepeatedFlags(CLI::App &app, int argc, char **argv) {
  CLI::App *cmd = &app;
  std::map<std::string, int> seen;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") break;
    bool isSub = false;
    for (CLI::App *sub : cmd->get_subcommands([&](CLI::App *s) { return s->check_name(arg); })) {
      cmd = sub;
      isSub = true;
      break;
    }
    if (isSub) continue;
    if (arg.rfind("--", 0) != 0) continue;
    std::string name = arg.substr(0, arg.find('='));
    const CLI::Option *opt = cmd->get_option_no_throw(name);
    if (opt && opt->get_expected_max() == 0 && ++seen[name] == 2)
      std::cerr << "kiln: warning: " << name << " is given more than once\n";
  }
}

} // namespace

int main(int argc, char **argv) {
  using namespace kiln::cli;
  CLI::App app{"kiln: ahead-of-time compiler from ONNX to a native shared library"};
  app.require_subcommand(1);
  app.set_version_flag("--version",
                       fmt::format("kiln {} (C ABI {}, shim level {})", kiln::aot::kilnVersion(),
                                   KILN_ABI_VERSION, KILN_SHIM_VERSION));
  // A single-valued option given twice is an error, not "last one wins".
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::Throw);
  app.footer("Exit status: 0 success, 1 error (bad model, input or run), 2 bad command line,\n"
             "3 inspect found unsupported ops, 70 internal error (a kiln bug), 130 interrupted.");
  // A file size limit makes writes fail with EFBIG (a clear error, temp files removed) instead
  // of killing kiln and the compilers it runs, which inherit this.
  std::signal(SIGXFSZ, SIG_IGN);
  addCompileCommand(app);
  addRunCommand(app);
  addBenchCommand(app);
  addInspectCommand(app);
  addCacheCommand(app);
  warnRepeatedFlags(app, argc, argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    app.exit(e);
    return kExitUsage;
  } catch (const ExitStatus &e) {
    return e.code;
  } catch (const kiln::aot::Interrupted &e) {
    std::cerr << "kiln: " << e.what() << "\n";
    return kExitInterrupted;
  } catch (const kiln::UserError &e) {
    std::cerr << "kiln: error: " << e.what() << "\n";
    return kExitError;
  } catch (const kiln::InternalError &e) {
    std::cerr << e.what() << "\n";
    return kExitInternal;
  } catch (const std::exception &e) {
    std::cerr << "kiln: error: " << e.what() << "\n";
    return kExitError;
  }
  return kExitOk;
}
