// A C++ host that loads a compiled model.so at run time (dlopen, through kiln.hpp) and runs
// it on one float32 input; prints each output value on its own line.
//
//   host_cpp MODEL.so INPUT.f32
//
// Build (see docs/deploying.md):
//   g++ -std=c++17 host.cpp $(pkg-config --cflags kiln) -ldl -o host_cpp
#define KILN_HPP_NO_LINKED // the model is dlopen'ed, not linked
#include <kiln/kiln.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>

int main(int argc, char **argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " MODEL.so INPUT.f32\n";
    return 2;
  }
  try {
    kiln::Options options;
    options.num_runners = 1;
    kiln::Model model(kiln::Api::load(argv[1]), options);
    kiln::TensorInfo in = model.input_info(0);
    int64_t count = 1;
    for (int64_t d : in.dims)
      count *= d; // a static-shape model: every dim is known
    std::vector<float> x(static_cast<size_t>(count));
    std::ifstream file(argv[2], std::ios::binary);
    if (!file.read(reinterpret_cast<char *>(x.data()), static_cast<std::streamsize>(count * 4))) {
      std::cerr << "host_cpp: cannot read " << count << " float32 values from " << argv[2] << "\n";
      return 1;
    }
    std::vector<kiln::OwnedTensor> outputs = model.run_alloc({kiln::TensorView(x.data(), in.dims)});
    const float *y = outputs[0].data<float>();
    for (int64_t i = 0; i < outputs[0].numel(); ++i)
      std::printf("%.9g\n", y[i]);
  } catch (const kiln::Error &e) {
    std::cerr << "host_cpp: " << e.what() << "\n"; // e.g. "KILN_ERR_DEVICE: this model was ..."
    return 1;
  }
  return 0;
}
