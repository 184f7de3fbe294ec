// The protobuf wire format (a sequence of fields: a varint key = number << 3 | wire type, then
// a varint, 8 or 4 bytes, or a varint length and that many bytes) is walked down to the
// main graph's initializers. Everything else is handed to protobuf in contiguous ranges:
// parsing a message's bytes in pieces, merging each into the same object, gives the same
// message as parsing them at once, so only the skipped raw_data differs.
#include "frontend/onnx/raw_data_scan.h"

#include <google/protobuf/io/coded_stream.h>
#include <onnx/onnx_pb.h>

namespace kiln::frontend {

namespace {

// Field numbers in onnx.proto.
constexpr uint64_t kModelGraph = 7;       // ModelProto.graph
constexpr uint64_t kGraphInitializer = 5; // GraphProto.initializer
constexpr uint64_t kTensorRawData = 9;    // TensorProto.raw_data
constexpr unsigned kWireLengthDelimited = 2;

bool readVarint(const uint8_t *&p, const uint8_t *end, uint64_t &v) {
  v = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    uint8_t b = *p++;
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

/// One field of a message: its number, wire type, payload (length-delimited only) and end.
struct Field {
  uint64_t number = 0;
  unsigned wire = 0;
  const uint8_t *payload = nullptr, *end = nullptr;
};

/// Reads the field at `p`; false on anything protobuf might read otherwise (groups, bad types,
/// overruns), which sends the whole input to the ordinary parse.
bool readField(const uint8_t *p, const uint8_t *end, Field &f) {
  uint64_t key = 0, n = 0;
  if (!readVarint(p, end, key)) return false;
  f.number = key >> 3;
  f.wire = static_cast<unsigned>(key & 7);
  if (f.number == 0) return false;
  switch (f.wire) {
  case 0:
    if (!readVarint(p, end, n)) return false;
    break;
  case 1:
    if (end - p < 8) return false;
    p += 8;
    break;
  case kWireLengthDelimited:
    if (!readVarint(p, end, n) || n > static_cast<uint64_t>(end - p)) return false;
    f.payload = p;
    p += n;
    break;
  case 5:
    if (end - p < 4) return false;
    p += 4;
    break;
  default: // groups (3, 4) and invalid types
    return false;
  }
  f.end = p;
  return true;
}

class Scanner {
public:
  Scanner(int recursionLimit, RawDataIndex &index) : limit_(recursionLimit), index_(index) {}

  bool model(const uint8_t *p, const uint8_t *end, onnx::ModelProto &m) {
    return walk(p, end, m, kModelGraph,
                [&](const Field &f) { return graph(f.payload, f.end, *m.mutable_graph()); });
  }

private:
  bool graph(const uint8_t *p, const uint8_t *end, onnx::GraphProto &g) {
    return walk(p, end, g, kGraphInitializer,
                [&](const Field &f) { return tensor(f.payload, f.end, *g.add_initializer()); });
  }

  bool tensor(const uint8_t *p, const uint8_t *end, onnx::TensorProto &t) {
    return walk(p, end, t, kTensorRawData, [&](const Field &f) {
      // The last raw_data wins, as in protobuf (an earlier one is not kept either).
      index_.spans[&t] = {f.payload, static_cast<size_t>(f.end - f.payload)};
      return true;
    });
  }

  /// Walks the fields of one message: length-delimited fields numbered `number` go to
  /// `take` (false: failure), the rest are merged into `msg` by protobuf in contiguous runs,
  /// each run before the field that ends it.
  template <typename Message, typename Take>
  bool walk(const uint8_t *p, const uint8_t *end, Message &msg, uint64_t number, Take take) {
    const uint8_t *run = p;
    auto flush = [&](const uint8_t *upTo) {
      if (upTo == run) return true;
      google::protobuf::io::CodedInputStream in(run, static_cast<int>(upTo - run));
      in.SetRecursionLimit(limit_);
      return msg.MergeFromCodedStream(&in) && in.ConsumedEntireMessage();
    };
    while (p < end) {
      Field f;
      if (!readField(p, end, f)) return false;
      if (f.number == number && f.wire == kWireLengthDelimited) {
        if (!flush(p) || !take(f)) return false;
        run = f.end;
      }
      p = f.end;
    }
    return flush(end);
  }

  int limit_;
  RawDataIndex &index_;
};

} // namespace

bool parseModelSkippingRawData(const uint8_t *data, size_t size, int recursionLimit,
                               onnx::ModelProto &model, RawDataIndex &index) {
  Scanner scan(recursionLimit, index);
  if (scan.model(data, data + size, model)) return true;
  model.Clear();
  index.spans.clear();
  return false;
}

} // namespace kiln::frontend
