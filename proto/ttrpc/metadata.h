// ttrpc request metadata: an ordered list of key/value pairs (Request field 5,
// repeated KeyValue). Keys may repeat; lookups ignore case, as Go's ttrpc.MD
// lower-cases keys.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ember::ttrpc {

class Metadata {
 public:
  using Entry = std::pair<std::string, std::string>;

  Metadata() = default;
  Metadata(std::initializer_list<Entry> entries) : entries_(entries) {}

  void add(std::string key, std::string value);
  // First value stored under `key`.
  std::optional<std::string> get(std::string_view key) const;
  std::vector<std::string> get_all(std::string_view key) const;

  const std::vector<Entry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }

 private:
  std::vector<Entry> entries_;
};

}  // namespace ember::ttrpc
