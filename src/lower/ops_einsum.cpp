// Einsum as one generated reduction: every distinct subscript letter is a loop; letters in
// the output are output dims, the rest are summed. Repeated letters in one operand read
// its diagonal; "..." spans broadcast dims (numpy rules).
#include "lower/ops_common.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

namespace kiln::lower {

namespace {

using loop::ReduceOp;

/// The placeholder subscript of the k-th ellipsis dim: a byte no letter uses (ONNX allows
/// both cases of letters), below every letter in the subscripts' order.
char ellipsisDim(int k) {
  return static_cast<char>(-128 + k);
}

/// Throws unless `term` is letters with at most one "..." (an operand or the output).
void checkSubscripts(const std::string &term, const std::string &eq, OpCtx &c) {
  size_t dots = term.find("...");
  std::string rest =
      dots == std::string::npos ? term : term.substr(0, dots) + term.substr(dots + 3);
  for (char ch : rest)
    if (!std::isalpha(static_cast<unsigned char>(ch)))
      fail("{}: equation '{}': subscripts must be letters with at most one '...' (got '{}')",
           c.node.describe(), eq, term);
}

/// One operand's subscripts with "..." expanded to placeholder subscripts (ellipsisDim, from
/// the right so shorter ellipses broadcast against longer ones).
std::vector<char> expand(const std::string &term, int rank, int ellipsisRank, OpCtx &c) {
  std::vector<char> out;
  size_t dots = term.find("...");
  std::string head = dots == std::string::npos ? term : term.substr(0, dots);
  std::string tail = dots == std::string::npos ? "" : term.substr(dots + 3);
  int letters = static_cast<int>(head.size() + tail.size());
  int ell = dots == std::string::npos ? 0 : rank - letters;
  if (ell < 0 || (dots == std::string::npos && letters != rank))
    fail("{}: subscripts '{}' do not match an operand of rank {}", c.node.describe(), term, rank);
  for (char ch : head)
    out.push_back(ch);
  for (int k = 0; k < ell; ++k)
    out.push_back(ellipsisDim(ellipsisRank - ell + k));
  for (char ch : tail)
    out.push_back(ch);
  return out;
}

void lowerEinsum(OpCtx &c) {
  std::string eq;
  for (char ch : c.node.attrString("equation", ""))
    if (ch != ' ') eq += ch;
  size_t arrow = eq.find("->");
  std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> terms;
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    terms.push_back(
        lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  for (const std::string &t : terms)
    checkSubscripts(t, eq, c);
  if (arrow != std::string::npos) checkSubscripts(eq.substr(arrow + 2), eq, c);
  if (terms.size() != c.numInputs())
    fail("{}: equation '{}' has {} operands for {} inputs", c.node.describe(), eq, terms.size(),
         c.numInputs());
  std::vector<LTensor> ins;
  int ellipsisRank = 0;
  for (size_t i = 0; i < terms.size(); ++i) {
    ins.push_back(c.in(i));
    size_t letters = 0;
    for (char ch : terms[i])
      letters += ch != '.';
    if (terms[i].find("...") != std::string::npos)
      ellipsisRank = std::max(ellipsisRank, ins[i].rank() - static_cast<int>(letters));
  }
  if (ellipsisRank > 64)
    fail("{}: '...' spans {} dims; kiln supports at most 64", c.node.describe(), ellipsisRank);
  std::vector<std::vector<char>> subs;
  std::map<char, sym::Expr> size;
  std::map<char, int> count;
  for (size_t i = 0; i < ins.size(); ++i) {
    subs.push_back(expand(terms[i], ins[i].rank(), ellipsisRank, c));
    for (size_t d = 0; d < subs[i].size(); ++d) {
      char ch = subs[i][d];
      ++count[ch];
      sym::Expr dim = ins[i].shape[d];
      auto it = size.find(ch);
      if (it == size.end() || it->second.isConst(1)) size[ch] = dim;
    }
  }
  std::vector<char> outSubs;
  if (arrow != std::string::npos) {
    for (char ch : eq.substr(arrow + 2)) {
      if (ch == '.') continue;
      if (!size.count(ch))
        fail("{}: equation '{}': output subscript '{}' appears in no operand", c.node.describe(),
             eq, ch);
      if (std::count(outSubs.begin(), outSubs.end(), ch))
        fail("{}: equation '{}': output subscript '{}' appears twice", c.node.describe(), eq, ch);
      outSubs.push_back(ch);
    }
    if (size_t dots = eq.find("...", arrow); dots != std::string::npos) {
      size_t at = dots - (arrow + 2); // letters before the ellipsis in the output
      std::vector<char> ell;
      for (int k = 0; k < ellipsisRank; ++k)
        ell.push_back(ellipsisDim(k));
      outSubs.insert(outSubs.begin() + static_cast<long>(at), ell.begin(), ell.end());
    }
  } else { // implicit output: ellipsis dims, then letters used once, alphabetically
    for (int k = 0; k < ellipsisRank; ++k)
      outSubs.push_back(ellipsisDim(k));
    for (auto &[ch, n] : count)
      if (n == 1 && std::isalpha(static_cast<unsigned char>(ch))) outSubs.push_back(ch);
  }
  std::vector<char> all = outSubs;
  for (auto &[ch, n] : size)
    if (std::find(all.begin(), all.end(), ch) == all.end()) all.push_back(ch);
  ir::Shape shape;
  for (char ch : all)
    shape.push_back(size.at(ch));
  DType t = ins[0].dtype;
  DType acc = isFloat(t) ? (t == DType::Float64 ? DType::Float64 : DType::Float32) : t;
  sym::Context *cx = &c.ctx();
  LTensor prod = c.pointwise(acc, shape, [=](const Index &i) {
    std::map<char, sym::Expr> at;
    for (size_t k = 0; k < all.size(); ++k)
      at[all[k]] = i[k];
    VRef p;
    for (size_t n = 0; n < ins.size(); ++n) {
      Index idx;
      for (size_t d = 0; d < subs[n].size(); ++d) // size-1 dims broadcast
        idx.push_back(ins[n].shape[d].isConst(1) ? cx->constant(0) : at.at(subs[n][d]));
      VRef v = loop::cast(ins[n].load(idx), acc);
      p = p ? loop::binary(BinaryOp::Mul, p, v) : v;
    }
    return p;
  });
  std::vector<int> reduced;
  for (size_t k = outSubs.size(); k < all.size(); ++k)
    reduced.push_back(static_cast<int>(k));
  LTensor r = reduced.empty() ? prod : c.reduce(prod, reduced, false, ReduceOp::Sum, acc);
  c.out(0, mapUnary(c, r, [t](VRef v) { return loop::cast(v, t); }));
}

} // namespace

void registerEinsumOps(std::vector<OpInfo> &r) {
  r.push_back({"Einsum", 12, lowerEinsum});
}

} // namespace kiln::lower
