// Parsing a model without copying its weights (frontend/onnx/raw_data_scan.h) gives protobuf's
// own result: the same message once the skipped raw_data is put back, the last of repeated
// raw_data fields, and for truncated input either the same message or a refusal (the caller
// then parses the ordinary way). ir::ByteBuffer views copy on write and align on typed use.
#include "frontend/onnx/importer.h"
#include "frontend/onnx/raw_data_scan.h"
#include "support/error.h"

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using kiln::frontend::parseModelSkippingRawData;
using kiln::frontend::RawDataIndex;

std::string floatBytes(int n, float first) {
  std::string s(static_cast<size_t>(n) * 4, '\0');
  for (int i = 0; i < n; ++i) {
    float v = first + static_cast<float>(i);
    std::memcpy(&s[static_cast<size_t>(i) * 4], &v, 4);
  }
  return s;
}

/// y = x + w, with initializers around it: raw_data with a field after it (doc_string),
/// typed data without raw_data, and a scalar.
onnx::ModelProto sampleModel() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("raw_data_scan_test");
  m.add_opset_import()->set_version(13);
  onnx::GraphProto &g = *m.mutable_graph();
  g.set_name("g");
  onnx::TensorProto &w = *g.add_initializer();
  w.set_name("w");
  w.set_data_type(onnx::TensorProto::FLOAT);
  w.add_dims(3);
  w.add_dims(5);
  w.set_raw_data(floatBytes(15, 1.5f));
  w.set_doc_string("after raw_data on the wire");
  onnx::TensorProto &k = *g.add_initializer();
  k.set_name("k");
  k.set_data_type(onnx::TensorProto::INT64);
  k.add_dims(2);
  k.add_int64_data(4);
  k.add_int64_data(-9);
  onnx::TensorProto &s = *g.add_initializer();
  s.set_name("s");
  s.set_data_type(onnx::TensorProto::FLOAT);
  s.set_raw_data(floatBytes(1, 7.f));
  onnx::NodeProto &n = *g.add_node();
  n.set_op_type("Add");
  n.set_name("add");
  n.add_input("x");
  n.add_input("w");
  n.add_output("y");
  onnx::ValueInfoProto &x = *g.add_input();
  x.set_name("x");
  x.mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  for (int d : {3, 5})
    x.mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(d);
  onnx::ValueInfoProto &y = *g.add_output();
  y.set_name("y");
  *y.mutable_type() = x.type();
  return m;
}

/// The scanned model with each skipped raw_data put back, serialized (the index's keys are
/// the scanned tensors, so the copy is matched by position).
std::string restored(const onnx::ModelProto &scanned, const RawDataIndex &index) {
  onnx::ModelProto m = scanned;
  for (int i = 0; i < scanned.graph().initializer_size(); ++i)
    if (const auto *span = index.find(scanned.graph().initializer(i))) {
      onnx::TensorProto &t = *m.mutable_graph()->mutable_initializer(i);
      EXPECT_FALSE(t.has_raw_data()) << t.name() << ": raw_data was copied after all";
      t.set_raw_data(std::string(reinterpret_cast<const char *>(span->data), span->size));
    }
  return m.SerializeAsString();
}

TEST(RawDataScan, GivesProtobufsMessageWithoutCopyingRawData) {
  std::string bytes = sampleModel().SerializeAsString();
  onnx::ModelProto scanned;
  RawDataIndex index;
  const auto *data = reinterpret_cast<const uint8_t *>(bytes.data());
  ASSERT_TRUE(parseModelSkippingRawData(data, bytes.size(), 100, scanned, index));
  EXPECT_EQ(index.spans.size(), 2u); // w and s; k has no raw_data
  for (const auto &[tensor, span] : index.spans) {
    EXPECT_GE(span.data, data);
    EXPECT_LE(span.data + span.size, data + bytes.size()); // inside the input: not a copy
  }
  EXPECT_EQ(restored(scanned, index), bytes);
}

TEST(RawDataScan, LastRawDataFieldWinsAsInProtobuf) {
  // An initializer whose bytes hold raw_data twice (a tensor serialized, then merged with a
  // second one): protobuf keeps the last.
  onnx::ModelProto m = sampleModel();
  onnx::TensorProto second;
  second.set_raw_data(floatBytes(15, 100.f));
  onnx::GraphProto g = m.graph();
  g.clear_initializer();
  std::string graphBytes = g.SerializeAsString();
  std::string tensorBytes =
      m.graph().initializer(0).SerializeAsString() + second.SerializeAsString();
  // GraphProto.initializer = 5, length-delimited; the tensor is under 128 * 128 bytes.
  ASSERT_LT(tensorBytes.size(), 16384u);
  std::string field = {static_cast<char>(5 << 3 | 2),
                       static_cast<char>(0x80 | (tensorBytes.size() & 0x7f)),
                       static_cast<char>(tensorBytes.size() >> 7)};
  graphBytes += field + tensorBytes;
  onnx::ModelProto outer;
  outer.set_ir_version(8);
  std::string bytes = outer.SerializeAsString();
  bytes += std::string{static_cast<char>(7 << 3 | 2),
                       static_cast<char>(0x80 | (graphBytes.size() & 0x7f)),
                       static_cast<char>(graphBytes.size() >> 7)} +
           graphBytes;
  onnx::ModelProto expected;
  ASSERT_TRUE(expected.ParseFromString(bytes));
  ASSERT_EQ(expected.graph().initializer(0).raw_data(), floatBytes(15, 100.f));
  onnx::ModelProto scanned;
  RawDataIndex index;
  ASSERT_TRUE(parseModelSkippingRawData(reinterpret_cast<const uint8_t *>(bytes.data()),
                                        bytes.size(), 100, scanned, index));
  EXPECT_EQ(restored(scanned, index), expected.SerializeAsString());
}

TEST(RawDataScan, EveryTruncationIsRefusedOrParsedAsProtobufDoes) {
  std::string bytes = sampleModel().SerializeAsString();
  for (size_t len = 1; len < bytes.size(); ++len) {
    onnx::ModelProto scanned, expected;
    RawDataIndex index;
    bool scannedOk = parseModelSkippingRawData(reinterpret_cast<const uint8_t *>(bytes.data()), len,
                                               100, scanned, index);
    bool protobufOk = expected.ParseFromArray(bytes.data(), static_cast<int>(len));
    if (!scannedOk) {
      EXPECT_TRUE(index.spans.empty()) << len;
      EXPECT_EQ(scanned.ByteSizeLong(), 0u) << len; // cleared for the ordinary parse
      continue;
    }
    ASSERT_TRUE(protobufOk) << "the scan accepted a prefix of " << len << " bytes protobuf refuses";
    EXPECT_EQ(restored(scanned, index), expected.SerializeAsString()) << len;
  }
}

TEST(RawDataScan, TruncatedModelFileIsRefusedByName) {
  std::string bytes = sampleModel().SerializeAsString();
  auto path = std::filesystem::temp_directory_path() /
              ("kiln_raw_scan_" + std::to_string(getpid()) + ".onnx");
  std::ofstream(path, std::ios::binary) << bytes.substr(0, bytes.size() - 7);
  kiln::sym::Context ctx;
  try {
    kiln::frontend::importModel(path.string(), ctx, {});
    ADD_FAILURE() << "a truncated model was imported";
  } catch (const kiln::UserError &e) {
    EXPECT_NE(std::string(e.what()).find("is not a valid ONNX model"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(RawDataScan, ImportedWeightsViewTheMappedFileAndKeepItAlive) {
  std::string bytes = sampleModel().SerializeAsString();
  auto path = std::filesystem::temp_directory_path() /
              ("kiln_raw_scan_view_" + std::to_string(getpid()) + ".onnx");
  std::ofstream(path, std::ios::binary) << bytes;
  kiln::sym::Context ctx;
  auto g = kiln::frontend::importModel(path.string(), ctx, {});
  std::filesystem::remove(path); // the mapping outlives the file's name
  const kiln::ir::Value *w = g->findValue("w");
  ASSERT_TRUE(w && w->data);
  EXPECT_TRUE(w->data->bytes.isView());
  ASSERT_EQ(w->data->numel(), 15);
  for (int i = 0; i < 15; ++i)
    EXPECT_EQ(w->data->getDouble(i), 1.5 + i) << i; // typed reads: an aligned copy if needed
  const kiln::ir::Value *k = g->findValue("k");
  ASSERT_TRUE(k && k->data);
  EXPECT_EQ(k->data->getInt(1), -9);
}

TEST(ByteBuffer, ViewCopiesOnWriteAndAlignsTypedReads) {
  auto source = std::make_shared<std::vector<uint8_t>>(64);
  for (size_t i = 0; i < source->size(); ++i)
    (*source)[i] = static_cast<uint8_t>(i);
  const uint8_t *odd = source->data() + 3; // misaligned for any type wider than a byte
  kiln::ir::ByteBuffer view = kiln::ir::ByteBuffer::view(source, odd, 16);
  kiln::ir::ByteBuffer copy = view;
  copy.data()[0] = 200; // a write goes to an owned copy, never to the source
  EXPECT_EQ((*source)[3], 3);
  EXPECT_EQ(copy[0], 200);
  const kiln::ir::ByteBuffer &constView = view;
  EXPECT_TRUE(constView.isView());
  EXPECT_EQ(constView.unalignedData(), odd); // byte-wise readers see the bytes in place
  const uint8_t *aligned = constView.data();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(aligned) % alignof(std::max_align_t), 0u);
  EXPECT_EQ(std::memcmp(aligned, odd, 16), 0);
  EXPECT_EQ(constView[0], 3);
  copy.resize(20, 9);
  EXPECT_EQ(copy.size(), 20u);
  EXPECT_EQ(copy[19], 9);
  EXPECT_FALSE(copy.isView());
}

} // namespace
