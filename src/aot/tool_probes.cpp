#include "aot/tool_probes.h"

#include "support/hash.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace kiln::aot {

namespace fs = std::filesystem;

namespace {

/// Marks a complete record: a file cut short (a crash mid-write on a filesystem without
/// atomic rename) is recomputed instead of being read as an answer.
constexpr const char *kRecordEnd = "\n#end-of-probe\n";

} // namespace

std::string toolIdentity(const std::string &tool) {
  const char *path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    fs::path candidate = fs::path(dir) / tool;
    if (::access(candidate.c_str(), X_OK) != 0) continue;
    std::error_code ec;
    fs::path real = fs::canonical(candidate, ec);
    struct stat st {};
    if (ec || ::stat(real.c_str(), &st) != 0) continue;
    return real.string() + ":" + std::to_string(st.st_size) + ":" +
           std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
  }
  return "none";
}

std::string cpuIdentity() {
  std::ifstream in("/proc/cpuinfo");
  std::string id, line;
  while (std::getline(in, line) && !line.empty()) { // the first CPU's block
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string field = line.substr(0, colon);
    field.erase(field.find_last_not_of(" \t") + 1);
    if (field == "vendor_id" || field == "cpu family" || field == "model" ||
        field == "model name" || field == "flags")
      id += line + "\n";
  }
  return id;
}

std::string cachedProbe(const std::string &cacheDir, const std::string &key,
                        const std::function<std::string()> &compute) {
  if (cacheDir.empty()) return compute();
  fs::path dir = fs::path(cacheDir) / "probes";
  fs::path file = dir / (hexHash(fnv1a(key)) + ".txt");
  {
    std::ifstream in(file, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    // The record repeats its key, so a hash collision reads as a miss.
    std::string head = key + "\n";
    size_t end = text.size() >= std::strlen(kRecordEnd) ? text.size() - std::strlen(kRecordEnd)
                                                        : std::string::npos;
    if (in && text.rfind(head, 0) == 0 && end != std::string::npos && end >= head.size() &&
        text.compare(end, std::string::npos, kRecordEnd) == 0)
      return text.substr(head.size(), end - head.size());
  }
  std::string answer = compute();
  std::error_code ec;
  fs::create_directories(dir, ec);
  fs::path tmp = file;
  tmp += ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << key << "\n" << answer << kRecordEnd;
    if (!out.flush()) {
      fs::remove(tmp, ec);
      return answer;
    }
  }
  fs::rename(tmp, file, ec);
  if (ec) fs::remove(tmp, ec);
  return answer;
}

} // namespace kiln::aot
