// Disk images for guests: raw files and ext4 filesystems built from a host
// directory (mkfs.ext4 -d), and reading files back out of an ext4 image after
// the guest shut down (debugfs), all without root or loop devices.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace ember::testing {

// A sparse zero-filled file of `size_bytes`.
void make_raw_image(const std::filesystem::path& image, uint64_t size_bytes);

// An ext4 filesystem of `size_bytes` whose root holds a copy of `source_dir`
// (empty filesystem when `source_dir` is empty). Throws common::Error with
// mkfs.ext4's output when it fails.
void make_ext4_image(const std::filesystem::path& image, const std::filesystem::path& source_dir,
                     uint64_t size_bytes = 32ull << 20);

// The content of `path_in_image` (absolute, e.g. "/from-guest.txt"); throws
// common::Error when the image or the file cannot be read.
std::string read_file_from_ext4(const std::filesystem::path& image, const std::string& path_in_image);

// True when mkfs.ext4 and debugfs (e2fsprogs) are installed.
bool have_e2fsprogs();

}  // namespace ember::testing
