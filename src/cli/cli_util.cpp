#include "cli/cli_util.h"

#include "support/error.h"

#include <CLI/CLI.hpp>

#include <charconv>

namespace kiln::cli {

std::vector<std::string> splitCommas(const std::string &text) {
  std::vector<std::string> parts;
  for (size_t at = 0; !text.empty() && at <= text.size();) {
    size_t comma = text.find(',', at);
    if (comma == std::string::npos) comma = text.size();
    parts.push_back(text.substr(at, comma - at));
    at = comma + 1;
  }
  return parts;
}

int64_t parseCount(const std::string &text, const std::string &flag, const std::string &whole) {
  int64_t v = 0;
  const char *end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec == std::errc::invalid_argument || ptr != end)
    fail("{} '{}': '{}' is not a whole number", flag, whole, text);
  if (ec == std::errc::result_out_of_range) fail("{} '{}': '{}' is too large", flag, whole, text);
  if (v < 0) fail("{} '{}': {} is negative", flag, whole, v);
  return v;
}

std::map<std::string, std::string> parseNamedValues(const std::vector<std::string> &items,
                                                    const std::string &flag,
                                                    const std::string &example) {
  std::map<std::string, std::string> out;
  for (const std::string &item : items) {
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      fail("{} '{}': expected name=value, e.g. {} {}", flag, item, flag, example);
    std::string name = item.substr(0, eq);
    if (!out.emplace(name, item.substr(eq + 1)).second)
      fail("{} given twice for '{}'; give each name once", flag, name);
  }
  return out;
}

std::vector<int64_t> parseShape(const std::string &text, const std::string &flag,
                                const std::string &whole) {
  std::vector<int64_t> dims;
  if (text.empty()) return dims;
  size_t at = 0;
  while (at <= text.size()) {
    size_t sep = text.find_first_of("x,", at);
    if (sep == std::string::npos) sep = text.size();
    dims.push_back(parseCount(text.substr(at, sep - at), flag, whole));
    at = sep + 1;
  }
  return dims;
}

CLI::Validator atLeast(int64_t min) {
  return CLI::Validator(
      [min](std::string &text) -> std::string {
        int64_t v = 0;
        auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc() || ptr != text.data() + text.size())
          return "'" + text + "' is not a whole number";
        if (v < min) return fmt::format("{} is too small; give a whole number >= {}", v, min);
        return "";
      },
      fmt::format("INT>={}", min));
}

std::string listNames(const std::vector<std::string> &names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i)
    s += (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + ("'" + names[i] + "'");
  return s.empty() ? "(none)" : s;
}

} // namespace kiln::cli
