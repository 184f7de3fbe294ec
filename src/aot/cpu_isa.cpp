#include "aot/cpu_isa.h"

#include "aot/tool_probes.h"
#include "runtime/cpu_features.h"
#include "support/error.h"

#include <cstdio>
#include <iterator>
#include <optional>
#include <regex>
#include <set>
#include <sys/wait.h>

namespace kiln::aot {

namespace {

/// A command started with its stdout+stderr piped back; finish() reads it to the end.
class Captured {
public:
  explicit Captured(const std::string &command) : p_(popen((command + " 2>&1").c_str(), "r")) {
    if (!p_) fail("cannot run '{}'", command);
  }
  Captured(const Captured &) = delete;
  Captured &operator=(const Captured &) = delete;
  ~Captured() {
    if (p_) pclose(p_);
  }
  /// The output, and whether the command exited with 0.
  std::pair<std::string, bool> finish() {
    std::string out;
    char buf[512];
    while (fgets(buf, sizeof buf, p_))
      out += buf;
    int status = pclose(p_);
    p_ = nullptr;
    return {out, status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0};
  }

private:
  FILE *p_;
};

// GCC's tuning name for "use 8-lane gathers" (x86-tune.def; newer releases may spell it with
// its lane count). An unknown name is an error, so the one g++ accepts is asked once.
constexpr const char *kGatherFlags[] = {"-mtune-ctrl=use_gather", "-mtune-ctrl=use_gather_8parts"};

/// What g++ says of -march=`cpu`: its name and features (resolveCpuIsa's answer).
CpuIsa queryCompiler(const std::string &cpu) {
  // The g++ queries run at once: each costs a compiler start, a good part of a warm compile.
  Captured macroQuery("g++ -march=" + cpu + " -dM -E -x c++ /dev/null");
  std::optional<Captured> nameQuery;
  if (cpu == "native") nameQuery.emplace("g++ -march=native -Q --help=target");
  std::optional<Captured> gatherQuery[std::size(kGatherFlags)];
  for (size_t i = 0; i < std::size(kGatherFlags); ++i)
    gatherQuery[i].emplace("g++ -march=" + cpu + " " + kGatherFlags[i] + " -E -x c++ /dev/null");
  auto [macros, ok] = macroQuery.finish();
  if (!ok) {
    std::string first = macros.substr(0, macros.find('\n'));
    fail("--cpu '{}': g++ does not accept -march={} ({}); use native, x86-64-v2, x86-64-v3, "
         "x86-64-v4 or a -march name g++ knows",
         cpu, cpu, first);
  }
  CpuIsa isa{cpu, cpu, "", ""};
  for (size_t i = 0; i < std::size(kGatherFlags); ++i)
    if (gatherQuery[i]->finish().second && isa.gatherFlag.empty()) isa.gatherFlag = kGatherFlags[i];
  std::set<std::string> defined;
  std::regex define("#define (\\w+) ");
  for (auto it = std::sregex_iterator(macros.begin(), macros.end(), define);
       it != std::sregex_iterator(); ++it)
    defined.insert((*it)[1]);
  for (const cpu::Feature &f : cpu::kFeatures)
    if (defined.count(f.macro))
      isa.features += (isa.features.empty() ? "" : ",") + std::string(f.name);
  if (nameQuery) {
    auto [help, helpOk] = nameQuery->finish();
    std::smatch m;
    if (helpOk && std::regex_search(help, m, std::regex("-march=\\s+(\\S+)")))
      isa.name = "native (" + m[1].str() + ")";
  }
  return isa;
}

} // namespace

CpuIsa resolveCpuIsa(const std::string &cpu, const std::string &cacheDir) {
  // The name goes into a shell command: letters, digits, '-', '_', '.' only.
  if (!std::regex_match(cpu, std::regex("[A-Za-z0-9][A-Za-z0-9_.-]*")))
    fail("--cpu '{}': expected native, x86-64-v2, x86-64-v3, x86-64-v4 or a g++ -march name "
         "(e.g. skylake-avx512)",
         cpu);
  // A failed query throws, so only answers g++ gave are stored.
  std::string key = "cpu-isa v2\n" + cpu + "\n" + toolIdentity("g++") + "\n" +
                    (cpu == "native" ? cpuIdentity() : std::string());
  std::string record = cachedProbe(cacheDir, key, [&] {
    CpuIsa isa = queryCompiler(cpu);
    return isa.name + "\n" + isa.features + "\n" + isa.gatherFlag;
  });
  const size_t nl = record.find('\n'), nl2 = record.find('\n', nl + 1);
  if (nl == std::string::npos || nl2 == std::string::npos) return queryCompiler(cpu);
  return CpuIsa{cpu, record.substr(0, nl), record.substr(nl + 1, nl2 - nl - 1),
                record.substr(nl2 + 1)};
}

} // namespace kiln::aot
