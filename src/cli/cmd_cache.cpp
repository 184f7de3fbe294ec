// `kiln cache info|clean`: the compiled-object cache `kiln compile` keeps (content-hashed
// objects, so an unchanged kernel is never compiled twice).
#include "aot/compile.h"
#include "cli/commands.h"
#include "support/error.h"

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <signal.h>

namespace kiln::cli {

namespace {

namespace fs = std::filesystem;

struct CacheUsage {
  size_t objects = 0, bytes = 0, tempFiles = 0, staleBuilds = 0;
};

/// A build-<pid>-<hash> directory whose process is gone (killed with SIGKILL, power loss).
bool isStaleBuild(const fs::path &p) {
  std::string name = p.filename().string();
  if (name.rfind("build-", 0) != 0) return false;
  long pid = std::strtol(name.c_str() + 6, nullptr, 10);
  return pid <= 0 || (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH);
}

CacheUsage usage(const fs::path &dir) {
  CacheUsage u;
  std::error_code ec;
  if (fs::is_directory(dir / "objects", ec))
    for (const auto &e : fs::directory_iterator(dir / "objects", ec)) {
      if (!e.is_regular_file(ec)) continue;
      bool temp = e.path().filename().string().find(".tmp") != std::string::npos;
      (temp ? u.tempFiles : u.objects)++;
      u.bytes += e.file_size(ec);
    }
  // Precompiled headers and toolchain answers (aot/builder.cpp, aot/tool_probes.h): bytes only.
  for (const char *sub : {"pch", "probes"})
    if (fs::is_directory(dir / sub, ec))
      for (const auto &e : fs::recursive_directory_iterator(dir / sub, ec))
        if (e.is_regular_file(ec)) u.bytes += e.file_size(ec);
  if (fs::is_directory(dir, ec))
    for (const auto &e : fs::directory_iterator(dir, ec))
      u.staleBuilds += e.is_directory(ec) && isStaleBuild(e.path());
  return u;
}

void addInfo(CLI::App &cache, std::shared_ptr<std::string> dir) {
  auto *info = cache.add_subcommand("info", "where the cache is, how many objects, how large");
  auto asJson = std::make_shared<bool>(false);
  info->add_flag("--json", *asJson, "print as JSON");
  info->callback([dir, asJson] {
    fs::path d = dir->empty() ? aot::defaultCacheDir() : *dir;
    CacheUsage u = usage(d);
    if (*asJson) {
      nlohmann::json j = {{"dir", d.string()},
                          {"objects", u.objects},
                          {"bytes", u.bytes},
                          {"temp_files", u.tempFiles},
                          {"stale_builds", u.staleBuilds}};
      std::cout << j.dump() << "\n";
      return;
    }
    std::cout << fmt::format("cache:   {}{}\n", d.string(),
                             fs::exists(d) ? "" : " (does not exist yet)");
    std::cout << fmt::format("objects: {} ({:.1f} MiB)\n", u.objects, u.bytes / 1048576.0);
    if (u.tempFiles || u.staleBuilds)
      std::cout << fmt::format("left by killed compiles: {} temp file(s), {} build dir(s); "
                               "kiln cache clean removes them\n",
                               u.tempFiles, u.staleBuilds);
  });
}

void addClean(CLI::App &cache, std::shared_ptr<std::string> dir) {
  auto *clean = cache.add_subcommand(
      "clean", "delete the cached objects (the next compile of each model rebuilds them)");
  clean->callback([dir] {
    fs::path d = dir->empty() ? aot::defaultCacheDir() : *dir;
    CacheUsage before = usage(d);
    std::error_code ec;
    // Only what kiln writes there: objects/, pch/, probes/ and build dirs of compiles no
    // longer running.
    for (const char *sub : {"objects", "pch", "probes"}) {
      fs::remove_all(d / sub, ec);
      if (ec) fail("cannot remove '{}': {}", (d / sub).string(), ec.message());
    }
    if (fs::is_directory(d, ec))
      for (const auto &e : fs::directory_iterator(d, ec))
        if (e.is_directory(ec) && isStaleBuild(e.path())) fs::remove_all(e.path(), ec);
    std::cout << fmt::format("removed {} object(s), {:.1f} MiB, from {}\n",
                             before.objects + before.tempFiles, before.bytes / 1048576.0,
                             d.string());
  });
}

} // namespace

void addCacheCommand(CLI::App &app) {
  auto *cache = app.add_subcommand("cache", "show or clean kiln's compiled-object cache");
  cache->require_subcommand(1);
  auto dir = std::make_shared<std::string>();
  cache->add_option("--cache-dir", *dir, "the cache (default $KILN_CACHE_DIR, else ~/.cache/kiln)");
  addInfo(*cache, dir);
  addClean(*cache, dir);
}

} // namespace kiln::cli
