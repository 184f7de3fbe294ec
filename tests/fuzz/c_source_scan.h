// A small C/C++ lexer for checking generated source (the `names` fuzz target): it splits a
// text into string literals (decoded back to their bytes), comments and the remaining tokens.
// It knows only what kiln prints: "..." and '...' literals with C escapes, // and /* */
// comments, identifiers, numbers and punctuation; a backslash-newline outside a literal is
// kept as a token of its own so that a line splice shows up as a difference.
#pragma once

#include <string>
#include <vector>

namespace kiln::fuzz {

struct ScannedSource {
  std::vector<std::string> literals; // decoded bytes of each "..." literal, in order
  std::vector<std::string> comments; // text of each comment, without // or /* */
  std::vector<std::string> tokens;   // everything else; a literal is "<str>", a comment "<cmt>"
  std::string error;                 // non-empty when the text does not lex (unterminated ...)
};

ScannedSource scanSource(const std::string &text);

} // namespace kiln::fuzz
