// The subset of TOML 1.0 ember's configuration file uses: comments, [tables]
// (dotted names), `key = value` with bare or quoted keys, basic and literal
// strings (one line), integers (decimal, `_` separators, sign), booleans and
// one-line arrays of those. Anything else (dates, floats, inline tables,
// multi-line strings, arrays of tables) is rejected with the line number, so
// a file never silently means something else than it says.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "vmm/common/error.h"

namespace ember::shim {

struct TomlValue;
using TomlArray = std::vector<TomlValue>;

struct TomlValue {
  std::variant<std::string, int64_t, bool, TomlArray> value;
  int line = 0;

  bool is_string() const { return std::holds_alternative<std::string>(value); }
  bool is_integer() const { return std::holds_alternative<int64_t>(value); }
  bool is_bool() const { return std::holds_alternative<bool>(value); }
  bool is_array() const { return std::holds_alternative<TomlArray>(value); }
  // "string", "integer", "boolean", "array".
  std::string_view type_name() const;
};

// Keys are the full dotted path ("vm.kernel"), in file order of appearance.
using TomlDocument = std::map<std::string, TomlValue>;

class TomlError : public common::Error {
 public:
  TomlError(int line, const std::string& message)
      : common::Error("line " + std::to_string(line) + ": " + message), line_(line) {}
  int line() const { return line_; }

 private:
  int line_;
};

// Throws TomlError naming the line and the problem (also for a key defined twice).
TomlDocument parse_toml(std::string_view text);

}  // namespace ember::shim
