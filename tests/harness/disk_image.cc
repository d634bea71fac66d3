#include "tests/harness/disk_image.h"

#include <fcntl.h>
#include <unistd.h>

#include <system_error>

#include "tests/harness/command.h"
#include "tests/harness/temp_dir.h"
#include "vmm/common/error.h"
#include "vmm/common/unique_fd.h"

namespace ember::testing {
namespace fs = std::filesystem;

void make_raw_image(const fs::path& image, uint64_t size_bytes) {
  common::UniqueFd fd(::open(image.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) common::throw_errno("create raw image " + image.string());
  if (::ftruncate(fd.get(), static_cast<off_t>(size_bytes)) < 0) {
    common::throw_errno("size raw image " + image.string() + " to " + std::to_string(size_bytes) + " bytes");
  }
}

bool have_e2fsprogs() { return !find_program("mkfs.ext4").empty() && !find_program("debugfs").empty(); }

void make_ext4_image(const fs::path& image, const fs::path& source_dir, uint64_t size_bytes) {
  std::string mkfs = find_program("mkfs.ext4");
  if (mkfs.empty()) throw common::Error("make ext4 image " + image.string() + ": mkfs.ext4 not found (install e2fsprogs)");
  // mkfs.ext4 sizes the file itself; start from an empty one so a previous
  // image's blocks never show through.
  make_raw_image(image, 0);
  std::vector<std::string> argv = {mkfs, "-q", "-F", "-t", "ext4", "-L", "ember-test"};
  if (!source_dir.empty()) {
    argv.push_back("-d");
    argv.push_back(source_dir.string());
  }
  argv.push_back(image.string());
  argv.push_back(std::to_string(size_bytes / 1024) + "k");
  try {
    run_checked(argv);
  } catch (const common::Error& e) {
    throw common::Error("make ext4 image " + image.string() + " from " + source_dir.string() + ": " + e.what());
  }
}

std::string read_file_from_ext4(const fs::path& image, const std::string& path_in_image) {
  std::string debugfs = find_program("debugfs");
  if (debugfs.empty()) throw common::Error("read " + path_in_image + " from " + image.string() + ": debugfs not found (install e2fsprogs)");
  // debugfs exits 0 even when the file is missing, so dump into a scratch
  // directory and check that something arrived.
  TempDir scratch("ember-debugfs");
  fs::path out = scratch / "file";
  std::string output =
      run_checked({debugfs, "-R", "dump " + path_in_image + " " + out.string(), image.string()});
  std::error_code ec;
  if (!fs::exists(out, ec)) {
    throw common::Error("read " + path_in_image + " from ext4 image " + image.string() + ": " + output);
  }
  common::UniqueFd fd(::open(out.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) common::throw_errno("read " + out.string());
  std::string content;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) content.append(buf, static_cast<size_t>(n));
  if (n < 0) common::throw_errno("read " + out.string());
  return content;
}

}  // namespace ember::testing
