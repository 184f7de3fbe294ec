// ONNX TensorProto data of the narrow types → kiln's one-element-per-byte buffers: packed
// int4/uint2 (raw_data and int32_data, odd element counts), float8 codes in int32_data, and
// a packed tensor whose byte count does not match its dims is refused by name.
#include "frontend/onnx/tensor_proto.h"
#include "support/error.h"

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <vector>

namespace {

onnx::TensorProto tensor(const char *name, int type, std::vector<int64_t> dims) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(type);
  for (int64_t d : dims)
    t.add_dims(d);
  return t;
}

constexpr int kFloat8E4M3FN = 17, kInt4 = 22, kFloat4E2M1 = 23, kUInt2 = 25;

TEST(NarrowTensorImport, Int4RawDataUnpacksLowNibbleFirstAndSignExtends) {
  onnx::TensorProto t = tensor("w", kInt4, {5});
  t.set_raw_data(std::string("\x87\xA9\x0F", 3)); // 7, -8, -7, -6, -1 (last high nibble unused)
  auto d = kiln::frontend::convertTensor(t, ".", "test");
  ASSERT_EQ(d->bytes.size(), 5u);
  const int want[] = {7, -8, -7, -6, -1};
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(d->getInt(i), want[i]) << i;
}

TEST(NarrowTensorImport, UInt2Int32DataHoldsPackedBytes) {
  onnx::TensorProto t = tensor("z", kUInt2, {5});
  t.add_int32_data(3 | 0 << 2 | 1 << 4 | 2 << 6);
  t.add_int32_data(3);
  auto d = kiln::frontend::convertTensor(t, ".", "test");
  const int want[] = {3, 0, 1, 2, 3};
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(d->getInt(i), want[i]) << i;
}

TEST(NarrowTensorImport, Float8Int32DataHoldsOneCodeEach) {
  onnx::TensorProto t = tensor("s", kFloat8E4M3FN, {2});
  t.add_int32_data(0x38); // 1.0
  t.add_int32_data(0xFE); // -448
  auto d = kiln::frontend::convertTensor(t, ".", "test");
  EXPECT_EQ(d->getDouble(0), 1.0);
  EXPECT_EQ(d->getDouble(1), -448.0);
}

TEST(NarrowTensorImport, PackedByteCountMustMatchDims) {
  onnx::TensorProto t = tensor("q", kFloat4E2M1, {5});
  t.set_raw_data(std::string("\x12\x34", 2)); // 5 values need 3 bytes
  try {
    kiln::frontend::convertTensor(t, ".", "model 'm'");
    FAIL() << "a short packed tensor was accepted";
  } catch (const kiln::UserError &e) {
    std::string m = e.what();
    EXPECT_NE(m.find("'q'"), std::string::npos) << m;
    EXPECT_NE(m.find("needs 3"), std::string::npos) << m;
  }
}

} // namespace
