#include "aot/builder.h"

#include "aot/link_cache.h"
#include "aot/linking.h"

#include "aot/install_paths.h"
#include "aot/subprocess.h"
#include "aot/tool_probes.h"
#include "aot/weights_section.h"

#include "support/error.h"
#include "support/hash.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>
#include <unistd.h>
#include <vector>

namespace kiln::aot {

namespace fs = std::filesystem;

namespace {

/// Creates `p` and writes it through `emit`: 0, or the errno of the failure (open, emit or
/// close).
int emitFile(const fs::path &p, const std::function<bool(std::FILE *)> &emit) {
  std::FILE *f = std::fopen(p.c_str(), "wb");
  if (!f) return errno;
  bool ok = emit(f);
  int err = errno;
  if (std::fclose(f) != 0 && ok) {
    ok = false;
    err = errno;
  }
  return ok ? 0 : (err ? err : EIO);
}

/// Writes through `emit` to a temp name beside `p`, then renames; on any failure the temp file
/// is removed and the error names `p` and the reason.
void writeAtomically(const fs::path &p, const std::function<bool(std::FILE *)> &emit) {
  fs::path tmp = p;
  tmp += ".tmp" + std::to_string(getpid());
  int err = emitFile(tmp, emit);
  std::error_code ec;
  if (!err) fs::rename(tmp, p, ec);
  if (err || ec) {
    fs::remove(tmp, ec);
    writeFailed(p, err ? err : ec.value());
  }
}

void writeFile(const fs::path &p, std::string_view data) {
  writeAtomically(
      p, [&](std::FILE *f) { return std::fwrite(data.data(), 1, data.size(), f) == data.size(); });
}

/// A tool's log that says the disk filled up or a file size limit was hit: the user's problem.
void failIfOutOfSpace(const std::string &log, const std::string &what) {
  for (const char *m : {"No space left on device", "File too large", "Disk quota exceeded"})
    if (log.find(m) != std::string::npos)
      fail("{}: {} (disk full or file size limit):\n{}", what, m, log.substr(0, 2000));
}

std::string readFile(const fs::path &p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Job {
  fs::path source;
  std::string key; // cache key
  std::vector<std::string> flags;
  fs::path object;
  codegen::SourceTool tool = codegen::SourceTool::HostCxx;
  size_t cost = 0;     // bytes the tool reads: the longest jobs start first
  bool header = false; // a precompiled header for later builds (object: the .gch)
};

const char *compilerFor(const fs::path &src) {
  return src.extension() == ".c" ? "gcc" : "g++";
}

std::string includeDir() {
  return kilnPaths().includeDir;
}

std::string nvccPath() {
  if (const char *env = std::getenv("KILN_NVCC"); env && *env) return env;
  return "/usr/local/cuda/bin/nvcc";
}

/// nvcc's version line, part of the cache key of CUDA objects; fails clearly without nvcc.
std::string nvccVersion() {
  static const std::string version = [] {
    std::string cmd = nvccPath() + " --version 2>/dev/null";
    std::string out;
    if (FILE *p = popen(cmd.c_str(), "r")) {
      char buf[256];
      while (fgets(buf, sizeof buf, p))
        out += buf;
      pclose(p);
    }
    return out;
  }();
  if (version.find("release") == std::string::npos)
    fail("compiling for cuda needs nvcc (the CUDA toolkit); '{}' was not found or did not run "
         "(set KILN_NVCC to its path)",
         nvccPath());
  return version;
}

/// The command compiling one job into tmpObj (an object, or a fatbin for CUDA sources).
std::string compileCommand(const Job &j, const fs::path &tmpObj) {
  bool cuda = j.tool == codegen::SourceTool::CudaFatbin;
  std::string cmd = cuda ? nvccPath() + " -fatbin" : std::string(compilerFor(j.source));
  if (j.source.extension() == ".S") cmd = "gcc";
  for (auto &f : j.flags)
    cmd += " " + shellQuote(f);
  cmd += (cuda ? " " : j.header ? " -x c++-header " : " -c ") + shellQuote(j.source.string()) +
         " -o " + shellQuote(tmpObj.string());
  return cmd;
}

/// KILN_PRECOMPILED_HEADERS=0 compiles every source from its headers and precompiles none.
bool precompiledHeadersOn() {
  const char *v = std::getenv("KILN_PRECOMPILED_HEADERS");
  return !v || std::strcmp(v, "0") != 0;
}

/// The kiln headers a precompiled header may contain (include/kiln, include/dlpack): part of
/// its key, with the compiler's identity (tool_probes.h) and the flags.
std::string headersFingerprint() {
  std::vector<fs::path> headers;
  for (const char *sub : {"kiln", "dlpack"}) {
    std::error_code ec;
    for (const auto &e : fs::directory_iterator(fs::path(includeDir()) / sub, ec))
      headers.push_back(e.path());
  }
  std::sort(headers.begin(), headers.end());
  uint64_t h = fnv1a(toolIdentity("g++"));
  for (const fs::path &p : headers)
    h = fnv1a(readFile(p), fnv1a(p.filename().string(), h));
  return hexHash(h);
}

/// An object defining `symbol` (64-byte aligned, hidden) with the bytes of file `bin`, and
/// `<symbol>_size` holding their count (the CUDA fatbin).
std::string incbinAsm(const std::string &symbol, const fs::path &bin) {
  return "  .section .rodata\n  .balign 64\n  .globl " + symbol + "\n  .hidden " + symbol + "\n" +
         symbol + ":\n  .incbin \"" + bin.string() + "\"\n" + symbol + "_end:\n  .byte 0\n" +
         "  .balign 8\n  .globl " + symbol + "_size\n  .hidden " + symbol + "_size\n" + symbol +
         "_size:\n  .quad " + symbol + "_end - " + symbol + "\n" +
         "  .section .note.GNU-stack,\"\",@progbits\n";
}

/// Removes the build's work directory and any temp file still registered when the build
/// ends, normally or by an exception (a failed compile, an interrupt).
class TempFiles {
public:
  explicit TempFiles(fs::path work) : work_(std::move(work)) {}
  ~TempFiles() {
    std::error_code ec;
    std::lock_guard<std::mutex> lk(mu_);
    for (const fs::path &p : files_)
      fs::remove(p, ec);
    fs::remove_all(work_, ec);
  }
  void add(const fs::path &p) {
    std::lock_guard<std::mutex> lk(mu_);
    files_.push_back(p);
  }
  /// `tmp` becomes `dst` (atomically); it is no longer a temp file.
  void commit(const fs::path &tmp, const fs::path &dst) {
    fs::rename(tmp, dst);
    std::lock_guard<std::mutex> lk(mu_);
    files_.erase(std::remove(files_.begin(), files_.end(), tmp), files_.end());
  }

private:
  fs::path work_;
  std::mutex mu_;
  std::vector<fs::path> files_;
};

} // namespace

BuildResult buildSharedLibrary(const codegen::GeneratedModel &gm, const std::string &output,
                               const std::string &cacheDir, int jobs, bool embedWeights,
                               bool keepSources, const BuildProgress &progress) {
  BuildResult result;
  TempFilesScope interruptible; // a Ctrl-C now lets the cleanup below run first
  {
    fs::path parent = fs::absolute(output).parent_path();
    std::error_code ec;
    if (!fs::is_directory(parent, ec))
      fail("output directory '{}' does not exist", parent.string());
    if (fs::is_directory(output, ec)) fail("output path '{}' is a directory", output);
  }
  fs::path cache = fs::path(cacheDir) / "objects";
  fs::create_directories(cache);
  fs::path work = fs::path(cacheDir) /
                  ("build-" + std::to_string(getpid()) + "-" + hexHash(fnv1a(output)).substr(0, 8));
  TempFiles temps(work);
  fs::create_directories(work);
  std::vector<std::string> common = {"-fPIC", "-fvisibility=hidden", "-I" + includeDir()};
  // Part of every cache key: the compiler and the prelude every kernel includes.
  std::string toolId = "gcc12;" + includeDir() + ";" +
                       hexHash(fnv1a(readFile(fs::path(includeDir()) / "kiln/prelude.h"))) + ";" +
                       gm.cacheSalt;
  std::vector<Job> all;
  std::vector<Job> fatbins;
  // A source that includes a kiln header first compiles against its precompiled form when an
  // earlier build left one (<cacheDir>/pch/<key>/kiln/<header>.gch, found before the header
  // by g++'s search of -I directories); otherwise this build precompiles it, last, for the
  // next. The object's key does not change: the header's text is the same either way.
  std::vector<Job> headerJobs;
  std::string fingerprint;
  auto usePrecompiledHeader = [&](Job &j, const std::string &header, const std::string &flags) {
    if (fingerprint.empty()) fingerprint = headersFingerprint();
    fs::path root = fs::path(cacheDir) / "pch" /
                    hexHash(fnv1a(header + "\n" + flags + toolId + "\n" + fingerprint));
    fs::path gch = root / (header + ".gch");
    if (fs::exists(gch)) {
      j.flags.insert(j.flags.end() - static_cast<std::ptrdiff_t>(common.size()),
                     "-I" + root.string());
      return;
    }
    for (const Job &h : headerJobs)
      if (h.object == gch) return;
    Job h;
    h.source = fs::path(includeDir()) / header;
    h.flags = j.flags;
    h.object = gch;
    h.header = true;
    fs::create_directories(gch.parent_path());
    headerJobs.push_back(h);
  };
  for (const auto &src : gm.sources) {
    Job j;
    j.source = work / src.name;
    j.tool = src.tool;
    j.cost = src.text.size();
    writeFile(j.source, src.text);
    j.flags = src.flags;
    if (j.tool == codegen::SourceTool::CudaFatbin) {
      j.flags.push_back("-I" + includeDir());
      std::string flagStr;
      for (auto &f : j.flags)
        flagStr += f + " ";
      j.key = hexHash(fnv1a(src.text, fnv1a(flagStr + toolId + nvccVersion())));
      j.object = cache / (j.key + ".fatbin");
      fatbins.push_back(j);
      continue;
    }
    j.flags.insert(j.flags.end(), common.begin(), common.end());
    std::string flagStr;
    for (auto &f : j.flags)
      flagStr += f + " ";
    j.key = hexHash(fnv1a(src.text, fnv1a(flagStr + toolId)));
    j.object = cache / (j.key + ".o");
    if (!src.precompiledHeader.empty() && precompiledHeadersOn())
      usePrecompiledHeader(j, src.precompiledHeader, flagStr);
    all.push_back(j);
  }
  {
    Job entry;
    entry.source = kilnPaths().entrySource;
    entry.flags = {"-O2", "-std=c99"};
    entry.flags.insert(entry.flags.end(), common.begin(), common.end());
    // The entry's key covers the kiln headers it includes (the weights section's layout).
    std::string entryText = readFile(entry.source);
    for (const char *h : {"model.h", "model_desc.h", "runtime.h", "weights_section.h"})
      entryText += readFile(fs::path(includeDir()) / "kiln" / h);
    entry.key = hexHash(fnv1a(entryText, fnv1a(toolId + "entry")));
    entry.object = cache / (entry.key + ".o");
    all.push_back(entry);
  }
  // Embedded weights: model.so names them (kiln_weights_id, so the link's cache key covers
  // them); the bytes are appended after the link (include/kiln/weights_section.h).
  kiln_weights_id_v1 weightsId{KILN_WEIGHTS_MAGIC, 0, gm.weights.size};
  if (embedWeights) {
    weightsId.hash = gm.weights.hash(fnv1a("weights"));
    Job w;
    w.source = work / "weights_id.S";
    const std::string text = weightsIdAsm(weightsId.size, weightsId.hash);
    writeFile(w.source, text);
    w.key = hexHash(fnv1a(text, fnv1a(toolId + "weights")));
    w.object = cache / (w.key + ".o");
    all.push_back(w);
  }
  std::vector<Job *> pending;
  for (Job &j : fatbins) {
    if (fs::exists(j.object))
      ++result.cacheHits;
    else
      pending.push_back(&j);
  }
  for (Job &j : all) {
    if (fs::exists(j.object))
      ++result.cacheHits;
    else
      pending.push_back(&j);
  }
  // Longest first (the wrapper), so no long job starts last; headers for later builds last.
  std::stable_sort(pending.begin(), pending.end(),
                   [](const Job *a, const Job *b) { return a->cost > b->cost; });
  for (Job &h : headerJobs)
    pending.push_back(&h);
  std::atomic<size_t> next{0}, done{0};
  std::mutex errMu;
  std::string firstError;
  int n = jobs > 0 ? jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  bool interrupted = false;
  if (progress && !pending.empty()) progress(0, pending.size());
  auto worker = [&] {
    for (size_t i; (i = next++) < pending.size();) {
      Job &j = *pending[i];
      fs::path tmpObj = j.object;
      tmpObj += ".tmp" + std::to_string(getpid()) + "_" + std::to_string(i);
      temps.add(tmpObj);
      fs::path log = work / (j.source.filename().string() + ".log");
      int rc = 0;
      try {
        rc = runShell(compileCommand(j, tmpObj) + " 2> " + shellQuote(log.string()));
      } catch (const Interrupted &) {
        std::lock_guard<std::mutex> lk(errMu);
        interrupted = true;
        return;
      }
      if (rc != 0) {
        std::error_code ec;
        fs::remove(tmpObj, ec);
        if (j.header) continue; // only a later build's speed-up: the sources compiled without
        std::lock_guard<std::mutex> lk(errMu);
        if (firstError.empty())
          firstError =
              "compiling " + j.source.string() + " failed:\n" + readFile(log).substr(0, 4000);
        continue;
      }
      temps.commit(tmpObj, j.object);
      if (progress) {
        std::lock_guard<std::mutex> lk(errMu);
        progress(++done, pending.size());
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::min<int>(n, static_cast<int>(pending.size())); ++t)
    threads.emplace_back(worker);
  for (auto &t : threads)
    t.join();
  result.compiled = pending.size() - headerJobs.size(); // objects, not headers
  if (interrupted) throw Interrupted();
  if (!firstError.empty()) failIfOutOfSpace(firstError, "writing an object to the cache failed");
  if (!firstError.empty())
    throw InternalError("kiln internal error: generated code did not compile (" + firstError + ")");
  // The (one) CUDA fatbin becomes kiln_cuda_fatbin / kiln_cuda_fatbin_size in model.so.
  KILN_ASSERT(fatbins.size() <= 1, "a model has one fatbin, got {}", fatbins.size());
  for (const Job &fb : fatbins) {
    fs::path asmFile = work / "cuda_fatbin.S", obj = cache / (fb.key + "-fatbin.o");
    if (!fs::exists(obj)) {
      writeFile(asmFile, incbinAsm("kiln_cuda_fatbin", fb.object));
      fs::path tmpObj = obj;
      tmpObj += ".tmp" + std::to_string(getpid());
      temps.add(tmpObj);
      std::string cmd = "gcc -c " + shellQuote(asmFile.string()) + " -o " +
                        shellQuote(tmpObj.string()) + " 2> " +
                        shellQuote((work / "fatbin.log").string());
      if (runShell(cmd) != 0)
        throw InternalError("kiln internal error: embedding the CUDA fatbin failed:\n" +
                            readFile(work / "fatbin.log").substr(0, 4000));
      temps.commit(tmpObj, obj);
    }
    Job embed;
    embed.object = obj;
    all.push_back(embed);
  }
  fs::path out = fs::absolute(output);
  fs::path tmpOut = out;
  tmpOut += ".tmp" + std::to_string(getpid());
  temps.add(tmpOut);
  std::string link = "g++ -shared" + linkerFlag(cacheDir);
  for (const std::string &f : gm.linkFlags)
    link += " " + shellQuote(f);
  // SONAME = the file name, so a host linked against model.so finds it by name (RUNPATH,
  // LD_LIBRARY_PATH) wherever it is moved.
  link += " -Wl,-z,now -Wl,-soname," + shellQuote(out.filename().string()) + " -o " +
          shellQuote(tmpOut.string());
  for (const Job &j : all)
    link += " " + shellQuote(j.object.string());
  link += " -L" + shellQuote(kilnPaths().runtimeLibDir) + " -lkiln_rt" + runpathFlags();
  // A warm compile of a large model is mostly the linker copying the weights: the linked
  // library is cached too, keyed by everything the link reads (content-hashed objects, the
  // flags, the output's name, which is its SONAME, and the runtime library it links to).
  fs::path linked = cache / (linkKey(link, tmpOut, out) + ".so");
  bool upToDate = false;
  if (cachedLibraryUsable(linked)) {
    upToDate = alreadyThere(linked, out);
    if (!upToDate) copyFromCache(linked, tmpOut, out);
    result.linkCached = true;
    result.unchanged = upToDate;
  } else {
    if (runShell(link + " 2> " + shellQuote((work / "link.log").string())) != 0) {
      std::error_code ec;
      fs::remove(tmpOut, ec);
      failIfOutOfSpace(readFile(work / "link.log"), "cannot write '" + out.string() + "'");
      throw InternalError("kiln internal error: linking model.so failed:\n" +
                          readFile(work / "link.log").substr(0, 4000));
    }
    if (embedWeights && !appendWeightsSection(tmpOut, weightsId, [&gm](std::FILE *f) {
          return gm.weights.write(f);
        })) {
      if (errno == EINVAL)
        throw InternalError("kiln internal error: appending the weights to model.so failed");
      writeFailed(out, errno ? errno : EIO);
    }
    storeInCache(tmpOut, linked);
  }
  checkInterrupt();
  std::error_code renameError;
  if (!upToDate) fs::rename(tmpOut, out, renameError);
  if (renameError) {
    fail("cannot write '{}': {}", out.string(), renameError.message());
  }
  if (keepSources) {
    fs::path dir = out;
    dir += ".src";
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const auto &src : gm.sources)
      writeFile(dir / src.name, src.text);
  }
  return result;
}

} // namespace kiln::aot
