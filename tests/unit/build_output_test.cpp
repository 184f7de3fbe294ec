// What the build writes besides compiler output: the weights' id (linked by GNU ld, lld and
// gold into a shared library) and their section appended after the link, and the CPU
// backend's source files, where kernels that differ only in their buffers are compiled once and
// the others forward to them (compiled and called here).
#include "aot/weights_section.h"
#include "codegen/backend.h"

#include <gtest/gtest.h>

#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

fs::path scratchDir(const std::string &name) {
  fs::path d = fs::temp_directory_path() / ("kiln-" + name + "-" + std::to_string(getpid()));
  fs::create_directories(d);
  return d;
}

void writeText(const fs::path &p, const std::string &text) {
  std::ofstream(p) << text;
}

// A shared library like model.so: `reader.c` reads the weights' id (weightsIdAsm), linked by
// `linkerFlag`.
fs::path linkWithId(const fs::path &dir, const std::string &linkerFlag, uint64_t size,
                    uint64_t hash) {
  writeText(dir / "id.S", kiln::aot::weightsIdAsm(size, hash));
  writeText(dir / "reader.c",
            "extern const unsigned long long kiln_weights_id[3];\n"
            "const unsigned long long *id_at(void) { return kiln_weights_id; }\n");
  fs::path so = dir / ("with_id" + std::to_string(linkerFlag.size()) + ".so");
  std::string cmd = "gcc -shared -fPIC " + linkerFlag + " -o " + so.string() + " " +
                    (dir / "reader.c").string() + " " + (dir / "id.S").string();
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return so;
}

// The .kiln.weights section's file offset and size as readelf reads them (0, 0 if none).
std::pair<uint64_t, uint64_t> sectionByReadelf(const fs::path &so) {
  std::string cmd = "readelf -SW " + so.string() +
                    " | sed -n 's/.*\\.kiln\\.weights *PROGBITS "
                    "*[0-9a-f]* \\([0-9a-f]*\\) \\([0-9a-f]*\\).*/\\1 \\2/p'";
  std::FILE *p = popen(cmd.c_str(), "r");
  unsigned long long offset = 0, size = 0;
  if (p) {
    if (std::fscanf(p, "%llx %llx", &offset, &size) != 2) offset = size = 0;
    pclose(p);
  }
  return {offset, size};
}

TEST(WeightsSection, AppendsTheBytesAndTheIdAfterALinkWithEachLinker) {
  fs::path dir = scratchDir("wsec");
  std::vector<unsigned char> bytes(100003);
  for (size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<unsigned char>(i * 131 + 7);
  const kiln_weights_id_v1 id{KILN_WEIGHTS_MAGIC, 0x0123456789abcdefull, bytes.size()};
  std::vector<std::string> linkers = {""};
  for (std::string ld : {"lld", "gold"}) // the linkers kiln prefers, where installed
    if (std::system(("g++ -fuse-ld=" + ld + " -Wl,--version >/dev/null 2>&1").c_str()) == 0)
      linkers.push_back("-fuse-ld=" + ld);
  for (const std::string &ld : linkers) {
    SCOPED_TRACE("linker '" + ld + "'");
    fs::path so = linkWithId(dir, ld, id.size, id.hash);
    ASSERT_TRUE(kiln::aot::appendWeightsSection(so, id, [&](std::FILE *f) {
      return std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    }));
    // readelf finds the section: page aligned, the bytes then the id.
    auto [offset, size] = sectionByReadelf(so);
    ASSERT_NE(offset, 0u) << "no .kiln.weights section";
    EXPECT_EQ(offset % KILN_WEIGHTS_ALIGN, 0u);
    ASSERT_EQ(size, bytes.size() + sizeof id);
    std::ifstream in(so, std::ios::binary);
    std::vector<unsigned char> got(size);
    in.seekg(static_cast<std::streamoff>(offset));
    in.read(reinterpret_cast<char *>(got.data()), static_cast<std::streamsize>(size));
    ASSERT_TRUE(std::equal(bytes.begin(), bytes.end(), got.begin()));
    EXPECT_EQ(std::memcmp(got.data() + bytes.size(), &id, sizeof id), 0);
    // The library still loads and its code reads the id it was built with.
    void *lib = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(lib, nullptr) << dlerror();
    auto idAt = reinterpret_cast<const unsigned long long *(*)()>(dlsym(lib, "id_at"));
    ASSERT_NE(idAt, nullptr);
    EXPECT_EQ(std::memcmp(idAt(), &id, sizeof id), 0);
    dlclose(lib);
    std::string nm = "nm -D " + so.string() + " | grep -q kiln_weights";
    EXPECT_NE(std::system(nm.c_str()), 0) << "the weights' symbols must not be exported";
  }
  fs::remove_all(dir);
}

TEST(WeightsSection, AWriterOfAnotherCountOrAFileNotElfFails) {
  fs::path dir = scratchDir("wsec-bad");
  const kiln_weights_id_v1 id{KILN_WEIGHTS_MAGIC, 1, 10};
  fs::path so = linkWithId(dir, "", id.size, id.hash);
  errno = 0;
  EXPECT_FALSE(kiln::aot::appendWeightsSection(
      so, id, [](std::FILE *g) { return std::fwrite("abc", 1, 3, g) == 3; }));
  EXPECT_EQ(errno, EINVAL);
  writeText(dir / "short.so", "\x7f"
                              "ELF");
  errno = 0;
  EXPECT_FALSE(
      kiln::aot::appendWeightsSection(dir / "short.so", id, [](std::FILE *) { return true; }));
  EXPECT_EQ(errno, EINVAL) << "a file that ends before its ELF header";
  writeText(dir / "text.so", "not an ELF file, but long enough to hold an ELF header's 64 bytes");
  errno = 0;
  EXPECT_FALSE(
      kiln::aot::appendWeightsSection(dir / "text.so", id, [](std::FILE *) { return true; }));
  EXPECT_EQ(errno, EINVAL);
  fs::remove_all(dir);
}

// Kernel texts as the CPU printer writes them: kernel 2 is kernel 0 on other buffers (other
// comments too), kernel 1 differs in one constant.
std::string kernel(int id, int in, int out, const char *scale, const char *origin) {
  return "// kernel " + std::to_string(id) + " from " + origin +
         "\nextern \"C\" void kiln_kernel_" + std::to_string(id) +
         "(const float *__restrict__ buf" + std::to_string(in) + ", float *__restrict__ buf" +
         std::to_string(out) + ", const int64_t S0) {\n  { // " + origin +
         "\n    for (int64_t i0 = 0; i0 < S0; ++i0) buf" + std::to_string(out) + "[i0] = " + scale +
         " * buf" + std::to_string(in) + "[i0];\n  }\n}\n\n";
}

TEST(KernelSources, DuplicateKernelsAreCompiledOnceAndForwarded) {
  auto backend = kiln::codegen::makeCpuBackend("x86-64", "");
  std::vector<std::string> kernels = {kernel(0, 3, 4, "2.0f", "/l0/Mul"),
                                      kernel(1, 4, 5, "3.0f", "/l0/Mul2"),
                                      kernel(2, 8, 9, "2.0f", "/l1/Mul")};
  std::vector<kiln::codegen::SourceFile> files = backend->sourceFiles(kernels, 24);
  ASSERT_EQ(files.size(), 1u);
  const std::string &text = files[0].text;
  EXPECT_EQ(text.find("/l1/Mul"), std::string::npos) << "kernel 2's body is not printed";
  EXPECT_NE(text.find("{ kiln_kernel_0(buf8, buf9, S0); }"), std::string::npos) << text;

  fs::path dir = scratchDir("dedup");
  writeText(dir / "k.cpp", text);
  std::string cmd = std::string(KILN_TEST_CXX) + " -std=c++20 -O1 -shared -fPIC -fopenmp -I" +
                    KILN_TEST_INCLUDE_DIR + " -o " + (dir / "k.so").string() + " " +
                    (dir / "k.cpp").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  void *lib = dlopen((dir / "k.so").c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(lib, nullptr) << dlerror();
  using Fn = void (*)(const float *, float *, int64_t);
  float x[3] = {1.f, -2.f, 0.5f}, y[3] = {};
  auto k1 = reinterpret_cast<Fn>(dlsym(lib, "kiln_kernel_1"));
  auto k2 = reinterpret_cast<Fn>(dlsym(lib, "kiln_kernel_2"));
  ASSERT_TRUE(k1 && k2);
  k2(x, y, 3);
  EXPECT_FLOAT_EQ(y[0], 2.f);
  EXPECT_FLOAT_EQ(y[1], -4.f);
  EXPECT_FLOAT_EQ(y[2], 1.f);
  k1(x, y, 3);
  EXPECT_FLOAT_EQ(y[1], -6.f) << "kernel 1 kept its own code";
  dlclose(lib);
  fs::remove_all(dir);
}

} // namespace
