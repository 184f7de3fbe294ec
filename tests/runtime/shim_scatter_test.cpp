// kiln_shim_scatter_elements_v1 / kiln_shim_scatter_nd_v1 against straightforward reference
// loops (written from the ONNX spec, over multi-indices rather than flat offsets), for every
// reduction and several element types.
#include <kiln/model.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace {

int64_t numel(const std::vector<int64_t> &d) {
  int64_t n = 1;
  for (int64_t x : d)
    n *= x;
  return n;
}

// Row-major multi-index of flat position i.
std::vector<int64_t> unravel(int64_t i, const std::vector<int64_t> &dims) {
  std::vector<int64_t> idx(dims.size());
  for (int64_t d = (int64_t)dims.size() - 1; d >= 0; --d) {
    idx[d] = i % dims[d];
    i /= dims[d];
  }
  return idx;
}

int64_t ravel(const std::vector<int64_t> &idx, const std::vector<int64_t> &dims) {
  int64_t off = 0;
  for (size_t d = 0; d < dims.size(); ++d)
    off = off * dims[d] + idx[d];
  return off;
}

template <typename T> T refReduce(int r, T a, T b) {
  switch (r) {
  case KILN_REDUCE_ADD:
    return a + b;
  case KILN_REDUCE_MUL:
    return a * b;
  case KILN_REDUCE_MIN:
    return std::min(a, b);
  case KILN_REDUCE_MAX:
    return std::max(a, b);
  }
  return b;
}

template <typename T> struct TypeCode;
template <> struct TypeCode<float> { static constexpr int v = KILN_ELEM_F32; };
template <> struct TypeCode<double> { static constexpr int v = KILN_ELEM_F64; };
template <> struct TypeCode<int32_t> { static constexpr int v = KILN_ELEM_I32; };
template <> struct TypeCode<int64_t> { static constexpr int v = KILN_ELEM_I64; };
template <> struct TypeCode<uint8_t> { static constexpr int v = KILN_ELEM_U8; };

template <typename T> std::vector<T> values(std::mt19937 &rng, int64_t n) {
  std::uniform_int_distribution<int> dist(-5, 5);
  std::vector<T> v(n);
  for (T &x : v)
    x = (T)(dist(rng) + (std::is_unsigned_v<T> ? 5 : 0));
  return v;
}

template <typename T> void checkElements(int reduction, int axis) {
  std::mt19937 rng(1234 + reduction * 7 + axis);
  const std::vector<int64_t> dd = {4, 5, 3}, id = {3, 4, 2};
  int rank = 3, ax = axis < 0 ? axis + rank : axis;
  auto data = values<T>(rng, numel(dd));
  auto upd = values<T>(rng, numel(id));
  std::vector<int64_t> idx(numel(id));
  std::uniform_int_distribution<int64_t> pick(-dd[ax], dd[ax] - 1); // negatives too
  for (auto &x : idx)
    x = pick(rng);
  std::vector<T> want = data;
  for (int64_t i = 0; i < numel(id); ++i) {
    auto p = unravel(i, id);
    int64_t v = idx[i] < 0 ? idx[i] + dd[ax] : idx[i];
    p[ax] = v;
    T &dst = want[ravel(p, dd)];
    dst = refReduce<T>(reduction, dst, upd[i]);
  }
  std::vector<T> out(data.size());
  ASSERT_EQ(kiln_shim_scatter_elements_v1(nullptr, 0, TypeCode<T>::v, sizeof(T), data.data(),
                                          dd.data(), rank, idx.data(), id.data(), upd.data(), axis,
                                          reduction, out.data()),
            KILN_OK)
      << kiln_rt_last_error();
  EXPECT_EQ(std::memcmp(out.data(), want.data(), sizeof(T) * want.size()), 0)
      << "reduction " << reduction << " axis " << axis;
  // In place (out == data) gives the same.
  ASSERT_EQ(kiln_shim_scatter_elements_v1(nullptr, 0, TypeCode<T>::v, sizeof(T), data.data(),
                                          dd.data(), rank, idx.data(), id.data(), upd.data(), axis,
                                          reduction, data.data()),
            KILN_OK);
  EXPECT_EQ(std::memcmp(data.data(), want.data(), sizeof(T) * want.size()), 0);
}

TEST(ScatterShim, ElementsAllReductionsAndTypes) {
  for (int r = KILN_REDUCE_NONE; r <= KILN_REDUCE_MAX; ++r)
    for (int axis : {0, 1, 2, -1}) {
      checkElements<float>(r, axis);
      checkElements<double>(r, axis);
      checkElements<int32_t>(r, axis);
      checkElements<int64_t>(r, axis);
      checkElements<uint8_t>(r, axis);
    }
}

template <typename T> void checkNd(int reduction, int k) {
  std::mt19937 rng(99 + reduction * 3 + k);
  const std::vector<int64_t> dd = {3, 4, 5};
  std::vector<int64_t> id = {2, 3, k};
  std::vector<int64_t> ud = {2, 3};
  for (size_t d = k; d < dd.size(); ++d)
    ud.push_back(dd[d]);
  auto data = values<T>(rng, numel(dd));
  auto upd = values<T>(rng, numel(ud));
  std::vector<int64_t> idx(numel(id));
  for (int64_t t = 0; t < 6; ++t)
    for (int j = 0; j < k; ++j) {
      std::uniform_int_distribution<int64_t> pick(-dd[j], dd[j] - 1);
      idx[t * k + j] = pick(rng);
    }
  std::vector<T> want = data;
  const std::vector<int64_t> sliceDims(dd.begin() + k, dd.end());
  int64_t slice = numel(sliceDims);
  for (int64_t t = 0; t < 6; ++t)
    for (int64_t e = 0; e < slice; ++e) {
      std::vector<int64_t> p;
      for (int j = 0; j < k; ++j) {
        int64_t v = idx[t * k + j];
        p.push_back(v < 0 ? v + dd[j] : v);
      }
      auto rest = unravel(e, sliceDims);
      p.insert(p.end(), rest.begin(), rest.end());
      T &dst = want[ravel(p, dd)];
      dst = refReduce<T>(reduction, dst, upd[t * slice + e]);
    }
  std::vector<T> out(data.size());
  ASSERT_EQ(kiln_shim_scatter_nd_v1(nullptr, 0, TypeCode<T>::v, sizeof(T), data.data(), dd.data(),
                                    3, idx.data(), id.data(), 3, upd.data(), reduction, out.data()),
            KILN_OK)
      << kiln_rt_last_error();
  EXPECT_EQ(std::memcmp(out.data(), want.data(), sizeof(T) * want.size()), 0)
      << "reduction " << reduction << " k " << k;
}

TEST(ScatterShim, NdAllReductionsAndTypes) {
  for (int r = KILN_REDUCE_NONE; r <= KILN_REDUCE_MAX; ++r)
    for (int k = 1; k <= 3; ++k) {
      checkNd<float>(r, k);
      checkNd<int64_t>(r, k);
      checkNd<uint8_t>(r, k);
    }
}

TEST(ScatterShim, HalfAndBoolReductions) {
  // f16: 1.5 + 2.25 = 3.75 exactly; bf16: 2 * 3 = 6; bool: add = or, mul = and.
  const int64_t dims[1] = {2}, idx[2] = {0, 1};
  uint16_t h[2] = {0x3e00 /* 1.5 */, 0x3c00 /* 1 */}, hu[2] = {0x4080 /* 2.25 */, 0x4000 /* 2 */};
  uint16_t ho[2];
  ASSERT_EQ(kiln_shim_scatter_elements_v1(nullptr, 0, KILN_ELEM_F16, 2, h, dims, 1, idx, dims, hu,
                                          0, KILN_REDUCE_ADD, ho),
            KILN_OK);
  EXPECT_EQ(ho[0], 0x4380); // 3.75
  EXPECT_EQ(ho[1], 0x4200); // 3
  uint16_t b[2] = {0x4000 /* 2 */, 0x3f80 /* 1 */}, bu[2] = {0x4040 /* 3 */, 0xc000 /* -2 */};
  uint16_t bo[2];
  ASSERT_EQ(kiln_shim_scatter_elements_v1(nullptr, 0, KILN_ELEM_BF16, 2, b, dims, 1, idx, dims, bu,
                                          0, KILN_REDUCE_MUL, bo),
            KILN_OK);
  EXPECT_EQ(bo[0], 0x40c0); // 6
  EXPECT_EQ(bo[1], 0xc000); // -2
  uint8_t t[2] = {1, 0}, tu[2] = {0, 1}, to[2];
  ASSERT_EQ(kiln_shim_scatter_elements_v1(nullptr, 0, KILN_ELEM_BOOL, 1, t, dims, 1, idx, dims, tu,
                                          0, KILN_REDUCE_ADD, to),
            KILN_OK);
  EXPECT_EQ(to[0], 1);
  EXPECT_EQ(to[1], 1);
  ASSERT_EQ(kiln_shim_scatter_elements_v1(nullptr, 0, KILN_ELEM_BOOL, 1, t, dims, 1, idx, dims, tu,
                                          0, KILN_REDUCE_MUL, to),
            KILN_OK);
  EXPECT_EQ(to[0], 0);
  EXPECT_EQ(to[1], 0);
}

TEST(ScatterShim, ErrorsChangeNothing) {
  const int64_t dims[1] = {3}, idims[1] = {2};
  float data[3] = {1, 2, 3}, upd[2] = {9, 9}, out[3] = {7, 7, 7};
  int64_t bad[2] = {0, 3};
  EXPECT_EQ(kiln_shim_scatter_elements_v1(nullptr, 0, KILN_ELEM_F32, 4, data, dims, 1, bad, idims,
                                          upd, 0, KILN_REDUCE_NONE, out),
            KILN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_rt_last_error()).find("index 3 at flat position 1"), std::string::npos)
      << kiln_rt_last_error();
  EXPECT_EQ(out[0], 7.f); // nothing written
  EXPECT_EQ(kiln_shim_scatter_elements_v1(nullptr, 0, KILN_ELEM_F32, 8, data, dims, 1, bad, idims,
                                          upd, 0, KILN_REDUCE_NONE, out),
            KILN_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_shim_scatter_elements_v1(nullptr, 0, KILN_ELEM_F32, 4, data, dims, 1, bad, idims,
                                          upd, 0, 9, out),
            KILN_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_shim_scatter_elements_v1(nullptr, 0, 77, 4, data, dims, 1, bad, idims, upd, 0,
                                          KILN_REDUCE_NONE, out),
            KILN_ERR_INVALID_ARGUMENT);
  const int64_t ndIdx[2] = {1, 1};
  int64_t badNd[1] = {-4};
  EXPECT_EQ(kiln_shim_scatter_nd_v1(nullptr, 0, KILN_ELEM_F32, 4, data, dims, 1, badNd, ndIdx, 2,
                                    upd, KILN_REDUCE_NONE, out),
            KILN_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(out[0], 7.f);
}

} // namespace
