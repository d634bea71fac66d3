#include "shim/io/io_uri.h"

#include <cctype>

namespace ember::shim {

std::string percent_decode(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '%') {
      out += c;
      continue;
    }
    if (i + 2 >= text.size() || !std::isxdigit(static_cast<unsigned char>(text[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      throw common::Error("invalid percent-encoding in \"" + text + "\"");
    }
    out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
    i += 2;
  }
  return out;
}

IoTarget parse_io_uri(const std::string& uri) {
  IoTarget target;
  if (uri.empty()) return target;
  auto scheme_end = uri.find("://");
  bool has_scheme = scheme_end != std::string::npos && scheme_end > 0;
  if (has_scheme) {
    for (size_t i = 0; i < scheme_end; ++i) {
      char c = uri[i];
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.')) {
        has_scheme = false;
        break;
      }
    }
  }
  if (!has_scheme) {
    target.kind = IoTarget::Kind::kFifo;
    target.path = uri;
    return target;
  }
  std::string scheme = uri.substr(0, scheme_end);
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string rest = uri.substr(scheme_end + 3);
  std::string query;
  if (auto q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (auto f = rest.find('#'); f != std::string::npos) rest = rest.substr(0, f);
  if (rest.empty() || rest[0] != '/') {
    throw common::Error("stdio URI \"" + uri + "\": expected " + scheme + ":///absolute/path (no host part)");
  }
  target.path = percent_decode(rest);
  if (scheme == "file") {
    target.kind = IoTarget::Kind::kFile;
  } else if (scheme == "binary") {
    target.kind = IoTarget::Kind::kBinary;
    std::vector<std::string> keys;
    size_t start = 0;
    while (start < query.size()) {
      size_t end = query.find('&', start);
      if (end == std::string::npos) end = query.size();
      std::string pair = query.substr(start, end - start);
      start = end + 1;
      if (pair.empty()) continue;
      std::string key = pair, value;
      if (auto eq = pair.find('='); eq != std::string::npos) {
        key = pair.substr(0, eq);
        value = pair.substr(eq + 1);
      }
      // Query strings are form-encoded: '+' is a space.
      for (auto* s : {&key, &value})
        for (auto& c : *s)
          if (c == '+') c = ' ';
      key = percent_decode(key);
      value = percent_decode(value);
      // Go's url.Values keeps the first value per key; later duplicates only add values.
      bool seen = false;
      for (const auto& k : keys) seen = seen || k == key;
      if (seen) continue;
      keys.push_back(key);
      target.args.push_back(key);
      if (!value.empty()) target.args.push_back(value);
    }
  } else {
    throw common::Error("stdio URI \"" + uri + "\": unsupported scheme \"" + scheme +
                        "\" (expected a FIFO path, file:// or binary://)");
  }
  return target;
}

}  // namespace ember::shim
