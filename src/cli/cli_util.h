// Parsing and checking what users type on the kiln command line: every error names the
// flag and shows an example of what was expected.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

// CLI11 is declared here, not included: it costs 10-20 s in every file that includes it.
namespace CLI {
class Validator;
}

namespace kiln::cli {

/// "a,b,c" → {"a", "b", "c"}; "" → {}.
std::vector<std::string> splitCommas(const std::string &text);

/// A non-negative integer that fits int64; fails naming `flag` and `whole` otherwise.
int64_t parseCount(const std::string &text, const std::string &flag, const std::string &whole);

/// `name=value` items of a repeatable flag, each name at most once.
std::map<std::string, std::string> parseNamedValues(const std::vector<std::string> &items,
                                                    const std::string &flag,
                                                    const std::string &example);

/// "1x128" or "1,128" → {1, 128}; "" (a scalar) → {}.
std::vector<int64_t> parseShape(const std::string &text, const std::string &flag,
                                const std::string &whole);

/// CLI11 check: a whole number >= 0 (or >= 1), with a message a person can read.
CLI::Validator atLeast(int64_t min);

/// "a, b and c" for a message.
std::string listNames(const std::vector<std::string> &names);

} // namespace kiln::cli
