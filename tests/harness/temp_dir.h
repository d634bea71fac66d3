// A fresh directory under $TMPDIR (or /tmp), removed with everything in it
// when the object goes away.
#pragma once

#include <filesystem>
#include <string>

namespace ember::testing {

class TempDir {
 public:
  // Creates <tmp>/<prefix>.XXXXXX; throws common::Error when it cannot.
  explicit TempDir(const std::string& prefix = "ember-test");
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  TempDir& operator=(TempDir&& other) noexcept;
  ~TempDir();

  const std::filesystem::path& path() const { return path_; }
  // path() / name, for brevity in tests.
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace ember::testing
