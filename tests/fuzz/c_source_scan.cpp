#include "c_source_scan.h"

#include <cctype>
#include <cstddef>

namespace kiln::fuzz {

namespace {

bool isOctal(char c) {
  return c >= '0' && c <= '7';
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool isWordChar(char c) {
  auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) || c == '_';
}

/// Decodes the literal starting at text[i] (the opening quote); leaves i after the closing
/// quote. Returns false (with `error` set) on a raw newline, an unknown escape or no end.
bool readLiteral(const std::string &text, size_t &i, std::string &out, std::string &error) {
  const char quote = text[i++];
  while (i < text.size()) {
    char c = text[i++];
    if (c == quote) return true;
    if (c == '\n') {
      error = "newline inside a literal at byte " + std::to_string(i - 1);
      return false;
    }
    if (c != '\\') {
      out += c;
      continue;
    }
    if (i >= text.size()) break;
    char e = text[i++];
    switch (e) {
    case 'a':
      out += '\a';
      break;
    case 'b':
      out += '\b';
      break;
    case 'f':
      out += '\f';
      break;
    case 'n':
      out += '\n';
      break;
    case 'r':
      out += '\r';
      break;
    case 't':
      out += '\t';
      break;
    case 'v':
      out += '\v';
      break;
    case '\\':
    case '\'':
    case '"':
    case '?':
      out += e;
      break;
    case 'x': {
      unsigned v = 0;
      int digits = 0;
      for (int h; i < text.size() && (h = hexValue(text[i])) >= 0; ++i, ++digits)
        v = v * 16 + static_cast<unsigned>(h);
      if (digits == 0 || v > 0xff) {
        error = "bad \\x escape at byte " + std::to_string(i);
        return false;
      }
      out += static_cast<char>(v);
      break;
    }
    default:
      if (!isOctal(e)) {
        error = std::string("unknown escape \\") + e + " at byte " + std::to_string(i - 1);
        return false;
      }
      unsigned v = static_cast<unsigned>(e - '0');
      for (int n = 1; n < 3 && i < text.size() && isOctal(text[i]); ++n, ++i)
        v = v * 8 + static_cast<unsigned>(text[i] - '0');
      if (v > 0xff) {
        error = "octal escape above 0377 at byte " + std::to_string(i);
        return false;
      }
      out += static_cast<char>(v);
    }
  }
  error = "unterminated literal";
  return false;
}

} // namespace

ScannedSource scanSource(const std::string &text) {
  ScannedSource s;
  size_t i = 0;
  while (i < text.size() && s.error.empty()) {
    char c = text[i];
    if (c == '\\' && i + 1 < text.size() && text[i + 1] == '\n') {
      s.tokens.push_back("<splice>");
      i += 2;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (text.compare(i, 2, "//") == 0) {
      size_t end = text.find('\n', i);
      if (end == std::string::npos) end = text.size();
      // A backslash (or the trigraph ??/) before the newline would continue the comment.
      std::string body = text.substr(i + 2, end - i - 2);
      if (!body.empty() && body.back() == '\\') s.error = "a // comment ends in a backslash";
      s.comments.push_back(body);
      s.tokens.push_back("<cmt>");
      i = end;
    } else if (text.compare(i, 2, "/*") == 0) {
      size_t end = text.find("*/", i + 2);
      if (end == std::string::npos) {
        s.error = "unterminated /* comment";
        break;
      }
      s.comments.push_back(text.substr(i + 2, end - i - 2));
      s.tokens.push_back("<cmt>");
      i = end + 2;
    } else if (c == '"') {
      std::string lit;
      if (!readLiteral(text, i, lit, s.error)) break;
      s.literals.push_back(lit);
      s.tokens.push_back("<str>");
    } else if (c == '\'') {
      std::string lit;
      if (!readLiteral(text, i, lit, s.error)) break;
      s.tokens.push_back("'" + lit + "'"); // kiln's own character constants
    } else if (isWordChar(c)) {
      size_t start = i;
      while (i < text.size() && (isWordChar(text[i]) || text[i] == '.'))
        ++i;
      s.tokens.push_back(text.substr(start, i - start));
    } else {
      s.tokens.push_back(std::string(1, c));
      ++i;
    }
  }
  return s;
}

} // namespace kiln::fuzz
