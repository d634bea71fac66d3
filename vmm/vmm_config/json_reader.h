// A schema-driven JSON reader that fails exactly like Firecracker's
// serde_json deserialization (reference/firecracker-compat.md §1.1): same
// messages ("missing field `vcpu_count`", "unknown variant `foo`, expected
// `V1` or `V2`", "invalid type: string \"2\", expected u8", "trailing
// comma", ...), same first-error order, and the same "at line L column C"
// positions, because upstream tests and tools match on them.
//
// The reader walks the text once, the way serde's derived Deserialize does:
// a caller describes a struct by its fields and reads each value as its key
// comes, so an early bad value is reported before a later unknown field, and
// a missing field only at the closing brace. Nothing is copied into a DOM.
//
// Errors are JsonError. A caller's own validation of a value it has read
// (serde's `Error::custom`) goes through JsonReader::fail(): like serde_json,
// the reader then positions it where the enclosing object or array ends.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "vmm/common/error.h"

namespace ember::vmm::json {

class JsonError : public common::Error {
 public:
  explicit JsonError(std::string message);  // not positioned yet
  JsonError(std::string message, size_t line, size_t column);

  const std::string& message() const { return message_; }
  bool positioned() const { return line_ != 0; }
  size_t line() const { return line_; }
  size_t column() const { return column_; }

 private:
  std::string message_;
  size_t line_ = 0;
  size_t column_ = 0;
};

struct FieldSpec {
  const char* name;
  bool required;  // neither Option<> nor #[serde(default)] upstream
};

class JsonReader {
 public:
  explicit JsonReader(std::string_view input) : in_(input) {}

  // serde_json::from_slice's final check: only whitespace may follow.
  void end();

  bool read_bool();
  // An unsigned integer of Rust type `type_name` ("u8", "u32", "usize", ...)
  // whose maximum is `max`.
  uint64_t read_uint(const char* type_name, uint64_t max);
  // A string; `expecting` is the Rust visitor's description ("a string",
  // "path string").
  std::string read_string(const char* expecting = "a string");
  // Option<T>: consumes `null` and returns true, or returns false and leaves
  // the value for the caller to read.
  bool read_null();
  // A fieldless enum (`"Variant"`, or serde's `{"Variant": null}` form).
  // Returns the index of the variant.
  size_t read_unit_variant(std::span<const char* const> variants);
  // A struct (`expecting` is "struct Name"). `on_field` is called with the
  // field's index once its key and colon are read, and must read the value.
  // Unknown keys are an error when `deny_unknown_fields`, else skipped.
  void read_struct(const char* expecting, std::span<const FieldSpec> fields,
                   bool deny_unknown_fields, const std::function<void(size_t)>& on_field);
  // A sequence (Vec<T>): `on_element` reads one element per call.
  void read_seq(const std::function<void()>& on_element);
  // A map with string keys (BTreeMap<String, T>): `on_entry` reads the value.
  void read_map(const std::function<void(std::string key)>& on_entry);
  // Any JSON value, checked for syntax only (serde's IgnoredAny).
  void ignore_value();
  // Like ignore_value(), returning the value's text (for serde's untagged
  // enums, which look at a value more than once).
  std::string_view skip_raw_value();
  // Whether the next value (after whitespace) is a string.
  bool peek_is_string();

  // serde's Error::custom: a semantic error about the value just read.
  [[noreturn]] static void fail(std::string message);

  // serde_json's syntax error kinds (public for the implementation's tables).
  enum class Code;

 private:
  struct Number;

  [[noreturn]] void error(Code code) const;       // at the current index
  [[noreturn]] void peek_error(Code code) const;  // at the next byte
  JsonError positioned(const JsonError& e) const;
  JsonError positioned_at(std::string message, size_t index) const;

  int peek() const { return pos_ < in_.size() ? static_cast<unsigned char>(in_[pos_]) : -1; }
  int peek_or_null() const { return pos_ < in_.size() ? static_cast<unsigned char>(in_[pos_]) : 0; }
  int next_char() { return pos_ < in_.size() ? static_cast<unsigned char>(in_[pos_++]) : -1; }
  void eat_char() { ++pos_; }
  int parse_whitespace();
  void parse_ident(const char* rest);
  Number parse_integer(bool positive);
  Number parse_number(bool positive, uint64_t significand, size_t start);
  Number parse_float_tail(bool positive, size_t start);
  std::string parse_str();
  void parse_escape(std::string& out);
  uint16_t decode_hex_escape();
  void ignore_str();
  void ignore_integer();
  void parse_object_colon();
  void end_seq();
  void end_map();
  bool has_next_key(bool& first);
  bool has_next_element(bool& first);
  [[noreturn]] void invalid_type_at_peek(const char* expecting);
  // The frame of every object and array: `open` ('{' or '['), else an
  // "invalid type" error naming `expecting`; the recursion guard; `visit`
  // reads the contents; then the closing bracket.
  void read_container(char open, const char* expecting, const std::function<void()>& visit);
  void enter();
  void leave() { ++remaining_depth_; }

  std::string_view in_;
  size_t pos_ = 0;
  int remaining_depth_ = 128;
};

// serde's OneOf: "`a`", "`a` or `b`", "one of `a`, `b`, `c`".
std::string one_of(std::span<const char* const> names);

}  // namespace ember::vmm::json
