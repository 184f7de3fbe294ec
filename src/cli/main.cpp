// The `kiln` command: compile, run, inspect.
#include "cli/commands.h"
#include "support/error.h"

#include <csignal>
#include <iostream>

int main(int argc, char **argv) {
  CLI::App app{"kiln: ahead-of-time compiler from ONNX to a native shared library"};
  app.require_subcommand(1);
  // A file size limit makes writes fail with EFBIG (a clear error, temp files removed) instead
  // of killing kiln and the compilers it runs, which inherit this.
  std::signal(SIGXFSZ, SIG_IGN);
  kiln::cli::addCompileCommand(app);
  kiln::cli::addRunCommand(app);
  kiln::cli::addInspectCommand(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    return app.exit(e);
  } catch (const kiln::UserError &e) {
    std::cerr << "kiln: error: " << e.what() << "\n";
    return 1;
  } catch (const kiln::InternalError &e) {
    std::cerr << e.what() << "\n";
    return 70;
  } catch (const std::exception &e) {
    std::cerr << "kiln: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
