// Small text encoders shared by the JSON writers (metrics, API bodies) and
// the config parsers (JSON, TOML).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ember::common {

// Appends `s` as a JSON string literal (RFC 8259 §7): quotes, backslash and
// control characters escaped; bytes >= 0x80 pass through (UTF-8 stays UTF-8).
void append_json_string(std::string& out, std::string_view s);
inline std::string json_quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  append_json_string(out, s);
  return out;
}

// Appends the UTF-8 encoding of code point `cp` (<= 0x10FFFF; callers validate).
void append_utf8(std::string& out, uint32_t cp);

// `v` as error messages show addresses, sizes and bit masks: "0x1f", "0x0".
std::string hex(uint64_t v);

}  // namespace ember::common
