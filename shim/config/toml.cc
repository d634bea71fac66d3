#include "shim/config/toml.h"

#include <cctype>
#include <limits>

#include "vmm/common/text.h"

namespace ember::shim {

std::string_view TomlValue::type_name() const {
  if (is_string()) return "string";
  if (is_integer()) return "integer";
  if (is_bool()) return "boolean";
  return "array";
}

namespace {

class LineParser {
 public:
  LineParser(std::string_view text, int line) : s_(text), line_(line) {}

  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
  }
  bool at_end_or_comment() {
    skip_ws();
    return pos_ >= s_.size() || s_[pos_] == '#';
  }
  void expect_end() {
    if (!at_end_or_comment()) fail("unexpected text \"" + std::string(s_.substr(pos_)) + "\"");
  }
  bool consume(char c) {
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  char peek() {
    skip_ws();
    return pos_ < s_.size() ? s_[pos_] : '\0';
  }

  // key ( "." key )*
  std::string dotted_key() {
    std::string out = simple_key();
    while (peek() == '.') {
      ++pos_;
      out += "." + simple_key();
    }
    return out;
  }

  TomlValue value() {
    skip_ws();
    TomlValue v;
    v.line = line_;
    if (pos_ >= s_.size()) fail("missing value");
    char c = s_[pos_];
    if (c == '"') {
      if (s_.substr(pos_, 3) == "\"\"\"") fail("multi-line strings are not supported");
      v.value = basic_string();
    } else if (c == '\'') {
      if (s_.substr(pos_, 3) == "'''") fail("multi-line strings are not supported");
      v.value = literal_string();
    } else if (c == '[') {
      ++pos_;
      TomlArray items;
      while (true) {
        if (peek() == ']') {
          ++pos_;
          break;
        }
        items.push_back(value());
        if (consume(',')) continue;
        if (!consume(']')) fail("expected ',' or ']' in array (arrays must be on one line)");
        break;
      }
      v.value = std::move(items);
    } else if (c == '{') {
      fail("inline tables are not supported");
    } else {
      size_t start = pos_;
      while (pos_ < s_.size() && s_[pos_] != ',' && s_[pos_] != ']' && s_[pos_] != '#' && s_[pos_] != ' ' &&
             s_[pos_] != '\t')
        ++pos_;
      std::string word(s_.substr(start, pos_ - start));
      if (word == "true") {
        v.value = true;
      } else if (word == "false") {
        v.value = false;
      } else {
        v.value = integer(word);
      }
    }
    return v;
  }

  [[noreturn]] void fail(const std::string& message) { throw TomlError(line_, message); }

 private:
  std::string simple_key() {
    skip_ws();
    if (pos_ >= s_.size()) fail("missing key");
    if (s_[pos_] == '"') return basic_string();
    if (s_[pos_] == '\'') return literal_string();
    size_t start = pos_;
    while (pos_ < s_.size() &&
           (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_' || s_[pos_] == '-'))
      ++pos_;
    if (start == pos_) fail("invalid key at \"" + std::string(s_.substr(start)) + "\"");
    return std::string(s_.substr(start, pos_ - start));
  }

  std::string basic_string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) fail("unterminated string");
      char c = s_[pos_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) fail("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case 'u':
        case 'U': {
          size_t len = e == 'u' ? 4 : 8;
          if (pos_ + len > s_.size()) fail("short unicode escape");
          uint32_t cp = 0;
          for (size_t i = 0; i < len; ++i) {
            char h = s_[pos_++];
            if (!std::isxdigit(static_cast<unsigned char>(h))) fail("bad unicode escape");
            cp = cp * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0'
                                                                                              : (std::tolower(h) - 'a' + 10));
          }
          common::append_utf8(out, cp);
          break;
        }
        default: fail(std::string("unknown escape \\") + e);
      }
    }
  }


  std::string literal_string() {
    ++pos_;
    size_t end = s_.find('\'', pos_);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string out(s_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return out;
  }

  int64_t integer(const std::string& word) {
    if (word.empty()) fail("missing value");
    std::string digits;
    size_t i = 0;
    bool negative = false;
    if (word[0] == '+' || word[0] == '-') {
      negative = word[0] == '-';
      i = 1;
    }
    bool last_underscore = true;  // no leading '_'
    for (; i < word.size(); ++i) {
      char c = word[i];
      if (c == '_') {
        if (last_underscore) fail("invalid number \"" + word + "\"");
        last_underscore = true;
        continue;
      }
      if (!std::isdigit(static_cast<unsigned char>(c))) {
        fail("invalid value \"" + word + "\" (strings must be quoted; floats, dates and hex are not supported)");
      }
      digits += c;
      last_underscore = false;
    }
    if (digits.empty() || last_underscore) fail("invalid number \"" + word + "\"");
    if (digits.size() > 1 && digits[0] == '0') fail("leading zeros in \"" + word + "\"");
    unsigned long long magnitude = 0;
    for (char c : digits) {
      unsigned long long next = magnitude * 10 + static_cast<unsigned>(c - '0');
      if (next / 10 != magnitude || next > static_cast<unsigned long long>(std::numeric_limits<int64_t>::max()) + 1)
        fail("number out of range \"" + word + "\"");
      magnitude = next;
    }
    if (!negative && magnitude > static_cast<unsigned long long>(std::numeric_limits<int64_t>::max()))
      fail("number out of range \"" + word + "\"");
    return negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
  }

  std::string_view s_;
  size_t pos_ = 0;
  int line_;
};

}  // namespace

TomlDocument parse_toml(std::string_view text) {
  TomlDocument doc;
  std::string table;
  std::map<std::string, int> tables;
  int line_no = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    ++line_no;
    start = end + 1;
    LineParser p(line, line_no);
    if (p.at_end_or_comment()) {
      if (end == text.size()) break;
      continue;
    }
    if (p.peek() == '[') {
      p.consume('[');
      if (p.peek() == '[') p.fail("arrays of tables are not supported");
      table = p.dotted_key();
      if (!p.consume(']')) p.fail("expected ']' after table name");
      p.expect_end();
      if (tables.count(table)) p.fail("table [" + table + "] defined twice");
      if (doc.count(table)) p.fail("table [" + table + "] conflicts with a key of the same name");
      tables[table] = line_no;
    } else {
      std::string key = p.dotted_key();
      if (!p.consume('=')) p.fail("expected '=' after key \"" + key + "\"");
      TomlValue value = p.value();
      p.expect_end();
      std::string full = table.empty() ? key : table + "." + key;
      if (doc.count(full)) p.fail("key \"" + full + "\" defined twice (first on line " +
                                  std::to_string(doc[full].line) + ")");
      doc[full] = std::move(value);
    }
    if (end == text.size()) break;
  }
  return doc;
}

}  // namespace ember::shim
