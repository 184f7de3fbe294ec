// kiln.hpp over the fake model (linked) and the static fake model (dlopen'ed): RAII, runs,
// run_alloc ownership, constants, and exceptions carrying the status and message.
#include <kiln/kiln.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace {

TEST(KilnHpp, RunsAndConstants) {
  kiln::Options o;
  o.num_runners = 2;
  o.threads_per_run = 1;
  kiln::Model m(o);
  EXPECT_EQ(m.num_inputs(), 1);
  EXPECT_EQ(m.num_constants(), 2);
  kiln::TensorInfo in = m.input_info(0);
  EXPECT_EQ(in.name, "x");
  EXPECT_EQ(in.dims[0], -1);
  EXPECT_STREQ(in.dim_names[0], "batch");
  EXPECT_EQ(in.dim_max[0], 8);

  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8}, y(8);
  m.run({kiln::TensorView(x.data(), {2, 4})}, {kiln::TensorView(y.data(), {2, 4})});
  EXPECT_EQ(y[0], 11.f);
  EXPECT_EQ(y[7], 48.f);
  auto dims = m.output_dims({kiln::TensorView(x.data(), {2, 4})});
  EXPECT_EQ(dims[0], (std::vector<int64_t>{2, 4}));

  std::vector<kiln::OwnedTensor> outs = m.run_alloc({kiln::TensorView(x.data(), {2, 4})});
  ASSERT_EQ(outs.size(), 1u);
  EXPECT_EQ(outs[0].numel(), 8);
  EXPECT_EQ(outs[0].data<float>()[1], 22.f);

  std::vector<float> c = {1, 1, 1, 1}, d = {2, 2, 2, 2}, back(4);
  m.update_constants(
      {{"c", kiln::TensorView(c.data(), {4})}, {"d", kiln::TensorView(d.data(), {4})}},
      kiln::Inactive, /*require_all=*/true);
  m.read_constant("c", kiln::TensorView(back.data(), {4}), kiln::Inactive);
  EXPECT_EQ(back, c);
  m.swap_constants();
  m.run({kiln::TensorView(x.data(), {2, 4})}, {kiln::TensorView(y.data(), {2, 4})});
  EXPECT_EQ(y[0], 4.f); // 1 + 1 + 2
  m.free_inactive_constants();
}

TEST(KilnHpp, ErrorsCarryStatusAndMessage) {
  kiln::Model m;
  std::vector<float> x(8), y(8);
  try {
    m.run({kiln::TensorView(x.data(), {2, 5})}, {kiln::TensorView(y.data(), {2, 4})});
    FAIL() << "expected kiln::Error";
  } catch (const kiln::Error &e) {
    EXPECT_EQ(e.status(), KILN_ERR_SHAPE_MISMATCH);
    EXPECT_NE(std::string(e.what()).find("input 'x'"), std::string::npos) << e.what();
  }
  try {
    m.swap_constants();
    FAIL() << "expected kiln::Error";
  } catch (const kiln::Error &e) {
    EXPECT_EQ(e.status(), KILN_ERR_INVALID_STATE);
  }
  std::vector<float> v(4);
  EXPECT_THROW(m.update_constants({{"nope", kiln::TensorView(v.data(), {4})}}), kiln::Error);
  void *in[1] = {x.data()}, *out[1] = {y.data()};
  EXPECT_THROW(m.run_minimal(in, out), kiln::Error); // symbolic model
  kiln::Options bad;
  bad.device = "tpu";
  EXPECT_THROW(kiln::Model{bad}, kiln::Error);
}

TEST(KilnHpp, LoadedModelAndMove) {
  kiln::Model m(kiln::Api::load(KILN_STATIC_MODEL));
  std::vector<float> x = {0, 1, 2, 3, 4, 5, 6, 7}, y(8);
  void *in[1] = {x.data()}, *out[1] = {y.data()};
  m.run_minimal(in, out);
  EXPECT_EQ(y[5], 5.f + 20.f);
  kiln::Model moved = std::move(m);
  EXPECT_EQ(m.handle(), nullptr);
  moved.run_minimal(in, out);
  EXPECT_THROW(kiln::Api::load("/nonexistent/model.so"), kiln::Error);
}

} // namespace
