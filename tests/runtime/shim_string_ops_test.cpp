// The level-6 string shims: StringSplit against Python's str.split (the expected pieces
// below were printed by CPython 3.11 for the same inputs), StringConcat, and RegexFullMatch
// through RE2 (matches, a rejected pattern, the per-site cache).
#include <kiln/model.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

class StringShims : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_EQ(kiln_rt_runner_create(&ctx_), KILN_OK); }
  void TearDown() override { kiln_rt_runner_destroy(ctx_); }

  /// Splits xs; returns the rows (K pieces each, as the shim pads them) and the lengths.
  int split(const std::vector<const char *> &xs, const char *delim, int64_t maxsplit, int64_t room,
            std::vector<std::vector<std::string>> &rows, std::vector<int64_t> &lengths) {
    std::vector<const char *> y(xs.size() * room + 1, nullptr);
    lengths.assign(xs.size(), -1);
    int64_t k = -1;
    int st = kiln_shim_string_split_v1(ctx_, 0, xs.data(), (int64_t)xs.size(), delim, maxsplit,
                                       room, y.data(), lengths.data(), &k);
    if (st) return st;
    rows.assign(xs.size(), {});
    for (size_t i = 0; i < xs.size(); ++i)
      for (int64_t j = 0; j < k; ++j)
        rows[i].push_back(y[i * k + j]);
    return KILN_OK;
  }

  void *ctx_ = nullptr;
};

using Rows = std::vector<std::vector<std::string>>;

TEST_F(StringShims, SplitAtDelimiterKeepsEmptyPieces) {
  Rows rows;
  std::vector<int64_t> len;
  // "a--b-".split("-") == ['a', '', 'b', '']; "".split("-") == ['']; "ab::c".split("::")
  ASSERT_EQ(split({"a--b-", "", "ab::c"}, "-", -1, 8, rows, len), KILN_OK);
  EXPECT_EQ(rows, (Rows{{"a", "", "b", ""}, {"", "", "", ""}, {"ab::c", "", "", ""}}));
  EXPECT_EQ(len, (std::vector<int64_t>{4, 1, 1}));
  ASSERT_EQ(split({"ab::c::"}, "::", -1, 8, rows, len), KILN_OK);
  EXPECT_EQ(rows, (Rows{{"ab", "c", ""}}));
}

TEST_F(StringShims, SplitAtWhitespaceDropsEdgesAndRuns) {
  Rows rows;
  std::vector<int64_t> len;
  // "  a \t b\n".split() == ['a', 'b']; "   ".split() == []; "".split() == []
  ASSERT_EQ(split({"  a \t b\n", "   ", ""}, nullptr, -1, 4, rows, len), KILN_OK);
  EXPECT_EQ(rows, (Rows{{"a", "b"}, {"", ""}, {"", ""}}));
  EXPECT_EQ(len, (std::vector<int64_t>{2, 0, 0}));
  ASSERT_EQ(split({"", ""}, "", -1, 4, rows, len), KILN_OK); // empty delimiter = whitespace
  EXPECT_EQ(len, (std::vector<int64_t>{0, 0}));
  EXPECT_EQ(rows, (Rows{{}, {}}));
}

TEST_F(StringShims, SplitMaxsplitKeepsTheRest) {
  Rows rows;
  std::vector<int64_t> len;
  // " a  b  c ".split(None, 1) == ['a', 'b  c ']; "a.b.c".split(".", 1) == ['a', 'b.c'];
  // " a b".split(None, 0) == ['a b']
  ASSERT_EQ(split({" a  b  c "}, nullptr, 1, 2, rows, len), KILN_OK);
  EXPECT_EQ(rows, (Rows{{"a", "b  c "}}));
  ASSERT_EQ(split({"a.b.c"}, ".", 1, 2, rows, len), KILN_OK);
  EXPECT_EQ(rows, (Rows{{"a", "b.c"}}));
  ASSERT_EQ(split({" a b"}, nullptr, 0, 1, rows, len), KILN_OK);
  EXPECT_EQ(rows, (Rows{{"a b"}}));
}

TEST_F(StringShims, SplitBeyondRoomFailsNamingTheString) {
  Rows rows;
  std::vector<int64_t> len;
  EXPECT_EQ(split({"a b", "a b c d"}, nullptr, -1, 3, rows, len), KILN_ERR_SHAPE_MISMATCH);
  std::string msg = kiln_rt_last_error();
  EXPECT_NE(msg.find("string 1 (\"a b c d\") splits into 4 pieces"), std::string::npos) << msg;
  EXPECT_NE(msg.find("at most 3"), std::string::npos) << msg;
}

TEST_F(StringShims, Concat) {
  std::vector<const char *> a{"ab", "", nullptr, "\xe7\x9a\x84"}, b{"c", "d", "e", "\xe7\x9a\x84"};
  std::vector<const char *> y(4);
  ASSERT_EQ(kiln_shim_string_concat_v1(ctx_, 0, a.data(), b.data(), 4, y.data()), KILN_OK);
  EXPECT_STREQ(y[0], "abc");
  EXPECT_STREQ(y[1], "d");
  EXPECT_STREQ(y[2], "e");
  EXPECT_STREQ(y[3], "\xe7\x9a\x84\xe7\x9a\x84");
}

TEST_F(StringShims, RegexFullMatchWholeStringOnly) {
  std::vector<const char *> x{"www.google.com", "xwww.google.com", "www.bbc.co.uk", ""};
  std::vector<uint8_t> y(4, 7);
  ASSERT_EQ(
      kiln_shim_regex_full_match_v1(ctx_, 3, "www\\.[\\w.-]+\\.\\bcom\\b", x.data(), 4, y.data()),
      KILN_OK);
  EXPECT_EQ(y, (std::vector<uint8_t>{1, 0, 0, 0}));
  // Another pattern at another site; then the first site again (cached, same answer).
  ASSERT_EQ(kiln_shim_regex_full_match_v1(ctx_, 4, "", x.data(), 4, y.data()), KILN_OK);
  EXPECT_EQ(y, (std::vector<uint8_t>{0, 0, 0, 1}));
  ASSERT_EQ(
      kiln_shim_regex_full_match_v1(ctx_, 3, "www\\.[\\w.-]+\\.\\bcom\\b", x.data(), 4, y.data()),
      KILN_OK);
  EXPECT_EQ(y, (std::vector<uint8_t>{1, 0, 0, 0}));
}

TEST_F(StringShims, RegexRejectedPatternSaysWhy) {
  std::vector<const char *> x{"a"};
  std::vector<uint8_t> y(1);
  EXPECT_EQ(kiln_shim_regex_full_match_v1(ctx_, 0, "(a", x.data(), 1, y.data()),
            KILN_ERR_INVALID_ARGUMENT);
  std::string msg = kiln_rt_last_error();
  EXPECT_NE(msg.find("pattern \"(a\" is not valid RE2 syntax: missing )"), std::string::npos)
      << msg;
  // Backreferences are not RE2 syntax (RE2 guarantees linear time).
  EXPECT_EQ(kiln_shim_regex_full_match_v1(ctx_, 0, "(a)\\1", x.data(), 1, y.data()),
            KILN_ERR_INVALID_ARGUMENT);
}

} // namespace
