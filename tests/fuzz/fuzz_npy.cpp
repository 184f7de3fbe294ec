// Fuzz target 4a: .npy bytes → readNpy (the `kiln run` input reader). Bad files must end in
// UserError naming the file.
#include "cli/npy.h"
#include "support/error.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

using namespace kiln;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const std::string path = "/tmp/kiln-fuzz-npy-" + std::to_string(getpid()) + ".npy";
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    cli::NpyArray a = cli::readNpy(path);
    int64_t n = 1;
    for (int64_t d : a.shape)
      n *= d;
    size_t elem = a.strings.empty() && a.dtype.code != kDLOpaqueHandle ? a.dtype.bits / 8 : 8;
    if (a.data.size() != static_cast<size_t>(n) * elem) std::abort();
  } catch (const UserError &) {
  }
  return 0;
}
