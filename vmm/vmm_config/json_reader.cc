#include "vmm/vmm_config/json_reader.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <vector>

#include "vmm/common/text.h"
#include "vmm/vmm_config/rust_format.h"

namespace ember::vmm::json {

// The error kinds of serde_json's ErrorCode that a reader can raise, with
// serde_json's texts.
enum class JsonReader::Code {
  kEofWhileParsingList,
  kEofWhileParsingObject,
  kEofWhileParsingString,
  kEofWhileParsingValue,
  kExpectedColon,
  kExpectedListCommaOrEnd,
  kExpectedObjectCommaOrEnd,
  kExpectedSomeIdent,
  kExpectedSomeValue,
  kInvalidEscape,
  kInvalidNumber,
  kNumberOutOfRange,
  kInvalidUnicodeCodePoint,
  kControlCharacterWhileParsingString,
  kKeyMustBeAString,
  kLoneLeadingSurrogateInHexEscape,
  kTrailingComma,
  kTrailingCharacters,
  kUnexpectedEndOfHexEscape,
  kRecursionLimitExceeded,
};

namespace {

using Code = JsonReader::Code;

const char* code_text(Code code) {
  switch (code) {
    case Code::kEofWhileParsingList:
      return "EOF while parsing a list";
    case Code::kEofWhileParsingObject:
      return "EOF while parsing an object";
    case Code::kEofWhileParsingString:
      return "EOF while parsing a string";
    case Code::kEofWhileParsingValue:
      return "EOF while parsing a value";
    case Code::kExpectedColon:
      return "expected `:`";
    case Code::kExpectedListCommaOrEnd:
      return "expected `,` or `]`";
    case Code::kExpectedObjectCommaOrEnd:
      return "expected `,` or `}`";
    case Code::kExpectedSomeIdent:
      return "expected ident";
    case Code::kExpectedSomeValue:
      return "expected value";
    case Code::kInvalidEscape:
      return "invalid escape";
    case Code::kInvalidNumber:
      return "invalid number";
    case Code::kNumberOutOfRange:
      return "number out of range";
    case Code::kInvalidUnicodeCodePoint:
      return "invalid unicode code point";
    case Code::kControlCharacterWhileParsingString:
      return "control character (\\u0000-\\u001F) found while parsing a string";
    case Code::kKeyMustBeAString:
      return "key must be a string";
    case Code::kLoneLeadingSurrogateInHexEscape:
      return "lone leading surrogate in hex escape";
    case Code::kTrailingComma:
      return "trailing comma";
    case Code::kTrailingCharacters:
      return "trailing characters";
    case Code::kUnexpectedEndOfHexEscape:
      return "unexpected end of hex escape";
    case Code::kRecursionLimitExceeded:
      return "recursion limit exceeded";
  }
  return "unknown error";
}

bool is_digit(int c) { return c >= '0' && c <= '9'; }
bool is_escape(unsigned char c) { return c == '"' || c == '\\' || c < 0x20; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void push_utf8(uint32_t cp, std::string& out) { common::append_utf8(out, cp); }

// Rust's serde derive rejects keys it does not know; with
// deny_unknown_fields that is "unknown field `x`, expected ...".
std::string unknown_field_message(std::string_view field, std::span<const FieldSpec> fields) {
  if (fields.empty()) return "unknown field `" + std::string(field) + "`, there are no fields";
  std::vector<const char*> names;
  names.reserve(fields.size());
  for (const auto& f : fields) names.push_back(f.name);
  return "unknown field `" + std::string(field) + "`, expected " + one_of(names);
}

}  // namespace

struct JsonReader::Number {
  enum Kind { kU64, kI64, kF64 } kind = kU64;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;

  // serde's Unexpected for numbers, as serde_json prints it.
  std::string unexpected() const {
    switch (kind) {
      case kU64:
        return "integer `" + std::to_string(u) + "`";
      case kI64:
        return "integer `" + std::to_string(i) + "`";
      case kF64:
        return "floating point `" + rust_float(f) + "`";
    }
    return "number";
  }
};

JsonError::JsonError(std::string message) : common::Error(message), message_(std::move(message)) {}

JsonError::JsonError(std::string message, size_t line, size_t column)
    : common::Error(message + " at line " + std::to_string(line) + " column " +
                    std::to_string(column)),
      message_(std::move(message)),
      line_(line),
      column_(column) {}

std::string one_of(std::span<const char* const> names) {
  std::string out;
  if (names.size() == 1) return std::string("`") + names[0] + "`";
  if (names.size() == 2) return std::string("`") + names[0] + "` or `" + names[1] + "`";
  out = "one of ";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) out += ", ";
    out += '`';
    out += names[i];
    out += '`';
  }
  return out;
}

void JsonReader::fail(std::string message) { throw JsonError(std::move(message)); }

JsonError JsonReader::positioned_at(std::string message, size_t index) const {
  // serde_json's SliceRead::position_of_index: 1-based line, 0-based byte
  // column counted from the start of the line (so it names the last byte read).
  size_t start_of_line = 0;
  size_t line = 1;
  for (size_t i = 0; i < index; ++i) {
    if (in_[i] == '\n') {
      ++line;
      start_of_line = i + 1;
    }
  }
  return JsonError(std::move(message), line, index - start_of_line);
}

JsonError JsonReader::positioned(const JsonError& e) const {
  if (e.positioned()) return e;
  return positioned_at(e.message(), pos_);
}

void JsonReader::error(Code code) const { throw positioned_at(code_text(code), pos_); }

void JsonReader::peek_error(Code code) const {
  throw positioned_at(code_text(code), std::min(in_.size(), pos_ + 1));
}

int JsonReader::parse_whitespace() {
  for (;;) {
    int c = peek();
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      eat_char();
    } else {
      return c;
    }
  }
}

void JsonReader::parse_ident(const char* rest) {
  for (const char* p = rest; *p; ++p) {
    int c = next_char();
    if (c < 0) error(Code::kEofWhileParsingValue);
    if (c != static_cast<unsigned char>(*p)) error(Code::kExpectedSomeIdent);
  }
}

void JsonReader::enter() {
  if (--remaining_depth_ == 0) peek_error(Code::kRecursionLimitExceeded);
}

JsonReader::Number JsonReader::parse_integer(bool positive) {
  size_t start = positive ? pos_ : pos_ - 1;
  int c = next_char();
  if (c < 0) error(Code::kEofWhileParsingValue);
  if (c == '0') {
    if (is_digit(peek_or_null())) peek_error(Code::kInvalidNumber);
    return parse_number(positive, 0, start);
  }
  if (c < '1' || c > '9') error(Code::kInvalidNumber);
  uint64_t significand = static_cast<uint64_t>(c - '0');
  for (;;) {
    int p = peek_or_null();
    if (!is_digit(p)) return parse_number(positive, significand, start);
    uint64_t digit = static_cast<uint64_t>(p - '0');
    constexpr uint64_t kMax = UINT64_MAX;
    if (significand >= kMax / 10 && (significand > kMax / 10 || digit > kMax % 10)) {
      // Too long for u64: serde_json continues as a float.
      return parse_float_tail(positive, start);
    }
    eat_char();
    significand = significand * 10 + digit;
  }
}

JsonReader::Number JsonReader::parse_number(bool positive, uint64_t significand, size_t start) {
  int p = peek_or_null();
  if (p == '.' || p == 'e' || p == 'E') return parse_float_tail(positive, start);
  Number n;
  if (positive) {
    n.kind = Number::kU64;
    n.u = significand;
    return n;
  }
  // Negative: an i64 unless it underflows, and `-0` is a float (as serde_json).
  if (significand == 0 || significand > (uint64_t{1} << 63)) {
    n.kind = Number::kF64;
    n.f = -static_cast<double>(significand);
    return n;
  }
  n.kind = Number::kI64;
  n.i = significand == (uint64_t{1} << 63) ? INT64_MIN : -static_cast<int64_t>(significand);
  return n;
}

JsonReader::Number JsonReader::parse_float_tail(bool positive, size_t start) {
  (void)positive;
  while (is_digit(peek_or_null())) eat_char();
  if (peek_or_null() == '.') {
    eat_char();
    bool any = false;
    while (is_digit(peek_or_null())) {
      eat_char();
      any = true;
    }
    if (!any) peek_error(peek() >= 0 ? Code::kInvalidNumber : Code::kEofWhileParsingValue);
  }
  int p = peek_or_null();
  if (p == 'e' || p == 'E') {
    eat_char();
    p = peek_or_null();
    if (p == '+' || p == '-') eat_char();
    int c = next_char();
    if (c < 0) error(Code::kEofWhileParsingValue);
    if (!is_digit(c)) error(Code::kInvalidNumber);
    while (is_digit(peek_or_null())) eat_char();
  }
  std::string text(in_.substr(start, pos_ - start));
  double f = std::strtod(text.c_str(), nullptr);
  if (std::isinf(f)) error(Code::kNumberOutOfRange);
  Number n;
  n.kind = Number::kF64;
  n.f = f;
  return n;
}

uint16_t JsonReader::decode_hex_escape() {
  if (in_.size() - pos_ < 4) {
    pos_ = in_.size();
    error(Code::kEofWhileParsingString);
  }
  int value = 0;
  bool ok = true;
  for (int k = 0; k < 4; ++k) {
    int h = hex_value(in_[pos_ + k]);
    if (h < 0) ok = false;
    value = value * 16 + (h < 0 ? 0 : h);
  }
  pos_ += 4;
  if (!ok) error(Code::kInvalidEscape);
  return static_cast<uint16_t>(value);
}

void JsonReader::parse_escape(std::string& out) {
  int ch = next_char();
  if (ch < 0) error(Code::kEofWhileParsingString);
  switch (ch) {
    case '"':
      out += '"';
      return;
    case '\\':
      out += '\\';
      return;
    case '/':
      out += '/';
      return;
    case 'b':
      out += '\b';
      return;
    case 'f':
      out += '\f';
      return;
    case 'n':
      out += '\n';
      return;
    case 'r':
      out += '\r';
      return;
    case 't':
      out += '\t';
      return;
    case 'u':
      break;
    default:
      error(Code::kInvalidEscape);
  }
  uint16_t n = decode_hex_escape();
  if (n >= 0xDC00 && n <= 0xDFFF) error(Code::kLoneLeadingSurrogateInHexEscape);
  if (n < 0xD800 || n > 0xDBFF) {
    push_utf8(n, out);
    return;
  }
  // A leading surrogate must be followed by `\u` and a trailing one.
  for (char expected : {'\\', 'u'}) {
    int p = peek();
    if (p < 0) error(Code::kEofWhileParsingString);
    eat_char();
    if (p != expected) error(Code::kUnexpectedEndOfHexEscape);
  }
  uint16_t n2 = decode_hex_escape();
  if (n2 < 0xDC00 || n2 > 0xDFFF) error(Code::kLoneLeadingSurrogateInHexEscape);
  uint32_t cp =
      ((static_cast<uint32_t>(n - 0xD800) << 10) | static_cast<uint32_t>(n2 - 0xDC00)) + 0x10000;
  push_utf8(cp, out);
}

std::string JsonReader::parse_str() {
  std::string out;
  size_t start = pos_;
  for (;;) {
    while (pos_ < in_.size() && !is_escape(static_cast<unsigned char>(in_[pos_]))) ++pos_;
    if (pos_ == in_.size()) error(Code::kEofWhileParsingString);
    char c = in_[pos_];
    if (c == '"') {
      out.append(in_.substr(start, pos_ - start));
      ++pos_;
      if (!is_valid_utf8(out)) error(Code::kInvalidUnicodeCodePoint);
      return out;
    }
    if (c == '\\') {
      out.append(in_.substr(start, pos_ - start));
      ++pos_;
      parse_escape(out);
      start = pos_;
    } else {
      ++pos_;
      error(Code::kControlCharacterWhileParsingString);
    }
  }
}

void JsonReader::ignore_str() {
  for (;;) {
    while (pos_ < in_.size() && !is_escape(static_cast<unsigned char>(in_[pos_]))) ++pos_;
    if (pos_ == in_.size()) error(Code::kEofWhileParsingString);
    char c = in_[pos_];
    if (c == '"') {
      ++pos_;
      return;
    }
    if (c != '\\') error(Code::kControlCharacterWhileParsingString);
    ++pos_;
    int ch = next_char();
    if (ch < 0) error(Code::kEofWhileParsingString);
    switch (ch) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't':
        break;
      case 'u':
        decode_hex_escape();
        break;
      default:
        error(Code::kInvalidEscape);
    }
  }
}

void JsonReader::ignore_integer() {
  int c = next_char();
  if (c == '0') {
    if (is_digit(peek_or_null())) peek_error(Code::kInvalidNumber);
  } else if (c >= '1' && c <= '9') {
    while (is_digit(peek_or_null())) eat_char();
  } else {
    error(Code::kInvalidNumber);
  }
  int p = peek_or_null();
  if (p == '.') {
    eat_char();
    bool any = false;
    while (is_digit(peek_or_null())) {
      eat_char();
      any = true;
    }
    if (!any) peek_error(Code::kInvalidNumber);
    p = peek_or_null();
  }
  if (p == 'e' || p == 'E') {
    eat_char();
    p = peek_or_null();
    if (p == '+' || p == '-') eat_char();
    if (!is_digit(next_char())) error(Code::kInvalidNumber);
    while (is_digit(peek_or_null())) eat_char();
  }
}

void JsonReader::ignore_value() {
  // Iterative like serde_json's (an explicit stack of open brackets), so
  // hostile nesting cannot exhaust the thread's stack.
  std::string stack;
  std::optional<char> enclosing;
  for (;;) {
    int p = parse_whitespace();
    if (p < 0) peek_error(Code::kEofWhileParsingValue);
    std::optional<char> frame;
    switch (p) {
      case 'n':
        eat_char();
        parse_ident("ull");
        break;
      case 't':
        eat_char();
        parse_ident("rue");
        break;
      case 'f':
        eat_char();
        parse_ident("alse");
        break;
      case '-':
        eat_char();
        ignore_integer();
        break;
      case '"':
        eat_char();
        ignore_str();
        break;
      case '[':
      case '{':
        if (enclosing) stack += *enclosing;
        enclosing.reset();
        eat_char();
        frame = static_cast<char>(p);
        break;
      default:
        if (is_digit(p)) {
          ignore_integer();
          break;
        }
        peek_error(Code::kExpectedSomeValue);
    }
    bool accept_comma;
    char current;
    if (frame) {
      accept_comma = false;
      current = *frame;
    } else if (enclosing) {
      accept_comma = true;
      current = *enclosing;
      enclosing.reset();
    } else if (!stack.empty()) {
      accept_comma = true;
      current = stack.back();
      stack.pop_back();
    } else {
      return;
    }
    for (;;) {
      int q = parse_whitespace();
      if (q == ',' && accept_comma) {
        eat_char();
        break;
      }
      if ((q == ']' && current == '[') || (q == '}' && current == '{')) {
        eat_char();
        if (stack.empty()) return;
        current = stack.back();
        stack.pop_back();
        accept_comma = true;
        continue;
      }
      if (q < 0)
        peek_error(current == '[' ? Code::kEofWhileParsingList : Code::kEofWhileParsingObject);
      if (accept_comma)
        peek_error(current == '[' ? Code::kExpectedListCommaOrEnd
                                  : Code::kExpectedObjectCommaOrEnd);
      break;
    }
    if (current == '{') {
      int q = parse_whitespace();
      if (q == '"') {
        eat_char();
      } else if (q < 0) {
        peek_error(Code::kEofWhileParsingObject);
      } else {
        peek_error(Code::kKeyMustBeAString);
      }
      ignore_str();
      q = parse_whitespace();
      if (q == ':') {
        eat_char();
      } else if (q < 0) {
        peek_error(Code::kEofWhileParsingObject);
      } else {
        peek_error(Code::kExpectedColon);
      }
    }
    enclosing = current;
  }
}

std::string_view JsonReader::skip_raw_value() {
  parse_whitespace();
  size_t start = pos_;
  ignore_value();
  return in_.substr(start, pos_ - start);
}

bool JsonReader::peek_is_string() { return parse_whitespace() == '"'; }

void JsonReader::invalid_type_at_peek(const char* expecting) {
  std::string unexpected;
  int p = peek_or_null();
  switch (p) {
    case 'n':
      eat_char();
      parse_ident("ull");
      unexpected = "null";
      break;
    case 't':
      eat_char();
      parse_ident("rue");
      unexpected = "boolean `true`";
      break;
    case 'f':
      eat_char();
      parse_ident("alse");
      unexpected = "boolean `false`";
      break;
    case '-':
      eat_char();
      unexpected = parse_integer(false).unexpected();
      break;
    case '"':
      eat_char();
      unexpected = "string " + rust_debug_str(parse_str());
      break;
    case '[':
      unexpected = "sequence";
      break;
    case '{':
      unexpected = "map";
      break;
    default:
      if (is_digit(p)) {
        unexpected = parse_integer(true).unexpected();
        break;
      }
      peek_error(Code::kExpectedSomeValue);
  }
  // serde_json's fix_position here uses the current index (the value just read).
  throw positioned_at("invalid type: " + unexpected + ", expected " + expecting, pos_);
}

void JsonReader::end() {
  if (parse_whitespace() >= 0) peek_error(Code::kTrailingCharacters);
}

bool JsonReader::read_bool() {
  int p = parse_whitespace();
  if (p < 0) peek_error(Code::kEofWhileParsingValue);
  if (p == 't') {
    eat_char();
    parse_ident("rue");
    return true;
  }
  if (p == 'f') {
    eat_char();
    parse_ident("alse");
    return false;
  }
  invalid_type_at_peek("a boolean");
}

uint64_t JsonReader::read_uint(const char* type_name, uint64_t max) {
  int p = parse_whitespace();
  if (p < 0) peek_error(Code::kEofWhileParsingValue);
  Number n;
  if (p == '-') {
    eat_char();
    n = parse_integer(false);
  } else if (is_digit(p)) {
    n = parse_integer(true);
  } else {
    invalid_type_at_peek(type_name);
  }
  // serde's integer visitors; the error is positioned after the number.
  switch (n.kind) {
    case Number::kU64:
      if (n.u <= max) return n.u;
      throw positioned_at("invalid value: " + n.unexpected() + ", expected " + type_name, pos_);
    case Number::kI64:
      throw positioned_at("invalid value: " + n.unexpected() + ", expected " + type_name, pos_);
    case Number::kF64:
      break;
  }
  throw positioned_at("invalid type: " + n.unexpected() + ", expected " + type_name, pos_);
}

std::string JsonReader::read_string(const char* expecting) {
  int p = parse_whitespace();
  if (p < 0) peek_error(Code::kEofWhileParsingValue);
  if (p != '"') invalid_type_at_peek(expecting);
  eat_char();
  return parse_str();
}

bool JsonReader::read_null() {
  if (parse_whitespace() != 'n') return false;
  eat_char();
  parse_ident("ull");
  return true;
}

size_t JsonReader::read_unit_variant(std::span<const char* const> variants) {
  auto lookup = [&](const std::string& name) {
    for (size_t i = 0; i < variants.size(); ++i)
      if (name == variants[i]) return i;
    std::string message = variants.empty()
                              ? "unknown variant `" + name + "`, there are no variants"
                              : "unknown variant `" + name + "`, expected " + one_of(variants);
    throw positioned_at(std::move(message), pos_);
  };
  int p = parse_whitespace();
  if (p == '"') {
    eat_char();
    return lookup(parse_str());
  }
  if (p < 0) peek_error(Code::kEofWhileParsingValue);
  if (p != '{') peek_error(Code::kExpectedSomeValue);
  // Externally tagged form {"Variant": null}.
  enter();
  eat_char();
  int q = parse_whitespace();
  if (q < 0) peek_error(Code::kEofWhileParsingObject);
  if (q == '}') peek_error(Code::kExpectedSomeValue);
  if (q != '"') peek_error(Code::kKeyMustBeAString);
  eat_char();
  size_t index = lookup(parse_str());
  parse_object_colon();
  int v = parse_whitespace();
  if (v < 0) peek_error(Code::kEofWhileParsingValue);
  if (v == 'n') {
    eat_char();
    parse_ident("ull");
  } else {
    invalid_type_at_peek("unit");
  }
  leave();
  q = parse_whitespace();
  if (q == '}') {
    eat_char();
    return index;
  }
  error(q < 0 ? Code::kEofWhileParsingObject : Code::kExpectedSomeValue);
}

void JsonReader::parse_object_colon() {
  int p = parse_whitespace();
  if (p == ':') {
    eat_char();
    return;
  }
  peek_error(p < 0 ? Code::kEofWhileParsingObject : Code::kExpectedColon);
}

void JsonReader::end_seq() {
  int p = parse_whitespace();
  if (p == ']') {
    eat_char();
    return;
  }
  if (p == ',') {
    eat_char();
    peek_error(parse_whitespace() == ']' ? Code::kTrailingComma : Code::kTrailingCharacters);
  }
  peek_error(p < 0 ? Code::kEofWhileParsingList : Code::kTrailingCharacters);
}

void JsonReader::end_map() {
  int p = parse_whitespace();
  if (p == '}') {
    eat_char();
    return;
  }
  if (p == ',') peek_error(Code::kTrailingComma);
  peek_error(p < 0 ? Code::kEofWhileParsingObject : Code::kTrailingCharacters);
}

bool JsonReader::has_next_key(bool& first) {
  int p = parse_whitespace();
  if (p < 0) peek_error(Code::kEofWhileParsingObject);
  if (p == '}') return false;
  if (first) {
    first = false;
    if (p == '"') return true;
    peek_error(Code::kKeyMustBeAString);
  }
  if (p != ',') peek_error(Code::kExpectedObjectCommaOrEnd);
  eat_char();
  int q = parse_whitespace();
  if (q == '"') return true;
  if (q == '}') peek_error(Code::kTrailingComma);
  peek_error(q < 0 ? Code::kEofWhileParsingValue : Code::kKeyMustBeAString);
}

bool JsonReader::has_next_element(bool& first) {
  int p = parse_whitespace();
  if (p < 0) peek_error(Code::kEofWhileParsingList);
  if (p == ']') return false;
  if (first) {
    first = false;
    return true;
  }
  if (p != ',') peek_error(Code::kExpectedListCommaOrEnd);
  eat_char();
  int q = parse_whitespace();
  if (q == ']') peek_error(Code::kTrailingComma);
  if (q < 0) peek_error(Code::kEofWhileParsingValue);
  return true;
}

void JsonReader::read_container(char open, const char* expecting,
                                const std::function<void()>& visit) {
  int p = parse_whitespace();
  if (p < 0) peek_error(Code::kEofWhileParsingValue);
  if (p != open) invalid_type_at_peek(expecting);
  enter();
  eat_char();
  std::optional<JsonError> failure;
  try {
    visit();
  } catch (const JsonError& e) {
    failure = e;
  }
  leave();
  auto close = [&] { open == '[' ? end_seq() : end_map(); };
  if (failure) {
    // serde_json evaluates end_seq()/end_map() even after a failed visit, and
    // places an unpositioned error wherever that left the reader.
    try {
      close();
    } catch (const JsonError&) {
    }
    throw positioned(*failure);
  }
  close();
}

void JsonReader::read_struct(const char* expecting, std::span<const FieldSpec> fields,
                             bool deny_unknown_fields,
                             const std::function<void(size_t)>& on_field) {
  // serde also accepts a struct written as an array of its fields; ember
  // only takes objects (no Firecracker client sends the array form).
  read_container('{', expecting, [&] {
    std::vector<bool> seen(fields.size(), false);
    bool first = true;
    while (has_next_key(first)) {
      eat_char();
      std::string key = parse_str();
      size_t index = fields.size();
      for (size_t i = 0; i < fields.size(); ++i) {
        if (key == fields[i].name) {
          index = i;
          break;
        }
      }
      if (index == fields.size()) {
        if (deny_unknown_fields) fail(unknown_field_message(key, fields));
        parse_object_colon();
        ignore_value();
        continue;
      }
      if (seen[index]) fail(std::string("duplicate field `") + fields[index].name + "`");
      seen[index] = true;
      parse_object_colon();
      on_field(index);
    }
    for (size_t i = 0; i < fields.size(); ++i)
      if (fields[i].required && !seen[i])
        fail(std::string("missing field `") + fields[i].name + "`");
  });
}

void JsonReader::read_seq(const std::function<void()>& on_element) {
  read_container('[', "a sequence", [&] {
    bool first = true;
    while (has_next_element(first)) on_element();
  });
}

void JsonReader::read_map(const std::function<void(std::string key)>& on_entry) {
  read_container('{', "a map", [&] {
    bool first = true;
    while (has_next_key(first)) {
      eat_char();
      std::string key = parse_str();
      parse_object_colon();
      on_entry(std::move(key));
    }
  });
}

}  // namespace ember::vmm::json
