// What the build writes besides compiler output: the weights' ELF object (linked by GNU ld,
// lld and gold into a shared library whose symbol holds the bytes), and the CPU backend's
// source files, where kernels that differ only in their buffers are compiled once and the
// others forward to them (compiled and called here).
#include "aot/linking.h"
#include "codegen/backend.h"

#include <gtest/gtest.h>

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
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

// The blob's bytes through the linked library: every byte, the symbol's size and alignment.
void expectLinkedBlob(const fs::path &dir, const std::string &linkerFlag,
                      const std::vector<unsigned char> &bytes) {
  fs::path so = dir / ("blob" + std::to_string(linkerFlag.size()) + ".so");
  std::string cmd = "gcc -shared " + linkerFlag + " -o " + so.string() + " " +
                    (dir / "reader.c").string() + " " + (dir / "blob.o").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  void *lib = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(lib, nullptr) << dlerror();
  auto at = reinterpret_cast<const unsigned char *(*)()>(dlsym(lib, "blob_at"));
  ASSERT_NE(at, nullptr);
  const unsigned char *p = at();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << "64-byte aligned";
  for (size_t i = 0; i < bytes.size(); ++i)
    ASSERT_EQ(p[i], bytes[i]) << "byte " << i << " with '" << linkerFlag << "'";
  dlclose(lib);
}

TEST(WeightsObject, LinksIntoASharedLibraryWithEachLinker) {
  fs::path dir = scratchDir("blob");
  std::vector<unsigned char> bytes(100003);
  for (size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<unsigned char>(i * 131 + 7);
  std::FILE *f = std::fopen((dir / "blob.o").c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_TRUE(kiln::aot::writeBlobObject(f, "kiln_weights_blob", bytes.size(), [&](std::FILE *g) {
    return std::fwrite(bytes.data(), 1, bytes.size(), g) == bytes.size();
  }));
  ASSERT_EQ(std::fclose(f), 0);
  // A hidden symbol: model.so's own code reaches it, nothing outside does.
  writeText(dir / "reader.c", "extern const unsigned char kiln_weights_blob[];\n"
                              "const unsigned char *blob_at(void) { return kiln_weights_blob; }\n");
  expectLinkedBlob(dir, "", bytes);
  for (std::string ld : {"lld", "gold"}) // the linkers kiln prefers, where installed
    if (std::system(("g++ -fuse-ld=" + ld + " -Wl,--version >/dev/null 2>&1").c_str()) == 0)
      expectLinkedBlob(dir, "-fuse-ld=" + ld, bytes);
  std::string nm = "nm -D " + (dir / "blob0.so").string() + " | grep -q kiln_weights_blob";
  EXPECT_NE(std::system(nm.c_str()), 0) << "the blob's symbol must not be exported";
  fs::remove_all(dir);
}

TEST(WeightsObject, ABlobWriterThatWritesAnotherCountFails) {
  std::FILE *f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  EXPECT_FALSE(kiln::aot::writeBlobObject(
      f, "b", 10, [](std::FILE *g) { return std::fwrite("abc", 1, 3, g) == 3; }));
  std::fclose(f);
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
  auto backend = kiln::codegen::makeCpuBackend("x86-64");
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
