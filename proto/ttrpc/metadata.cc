#include "proto/ttrpc/metadata.h"

#include <algorithm>
#include <cctype>

namespace ember::ttrpc {
namespace {

bool same_key(std::string_view a, std::string_view b) {
  return std::ranges::equal(
      a, b, [](unsigned char x, unsigned char y) { return std::tolower(x) == std::tolower(y); });
}

}  // namespace

void Metadata::add(std::string key, std::string value) {
  entries_.emplace_back(std::move(key), std::move(value));
}

std::optional<std::string> Metadata::get(std::string_view key) const {
  for (const auto& [k, v] : entries_) {
    if (same_key(k, key)) return v;
  }
  return std::nullopt;
}

std::vector<std::string> Metadata::get_all(std::string_view key) const {
  std::vector<std::string> values;
  for (const auto& [k, v] : entries_) {
    if (same_key(k, key)) values.push_back(v);
  }
  return values;
}

}  // namespace ember::ttrpc
