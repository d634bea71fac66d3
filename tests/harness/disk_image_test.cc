#include "tests/harness/disk_image.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "tests/harness/require.h"
#include "tests/harness/temp_dir.h"
#include "vmm/common/error.h"

namespace ember::testing {
namespace {
namespace fs = std::filesystem;

void write(const fs::path& path, const std::string& content) {
  std::ofstream(path) << content;
}

TEST(TempDir, IsCreatedAndRemovedWithItsContent) {
  fs::path kept;
  {
    TempDir dir("ember-tempdir-test");
    kept = dir.path();
    ASSERT_TRUE(fs::is_directory(kept));
    fs::create_directories(dir / "a/b");
    write(dir / "a/b/file", "x");
  }
  EXPECT_FALSE(fs::exists(kept));
}

TEST(TempDir, MovedFromDoesNotRemove) {
  TempDir first("ember-tempdir-test");
  fs::path path = first.path();
  TempDir second(std::move(first));
  EXPECT_EQ(second.path(), path);
  EXPECT_TRUE(fs::is_directory(path));
}

TEST(RawImage, HasTheRequestedSize) {
  TempDir dir;
  make_raw_image(dir / "disk.img", 3 << 20);
  EXPECT_EQ(fs::file_size(dir / "disk.img"), 3u << 20);
}

TEST(Ext4Image, FileWrittenIntoImageReadsBack) {
  EMBER_REQUIRE(have_e2fsprogs(), "mkfs.ext4/debugfs (e2fsprogs) not installed");
  TempDir dir;
  fs::create_directories(dir / "root/sub");
  write(dir / "root/sub/hello.txt", "hello from the host\n");
  make_ext4_image(dir / "fs.img", dir / "root", 8 << 20);
  EXPECT_EQ(fs::file_size(dir / "fs.img"), 8u << 20);
  EXPECT_EQ(read_file_from_ext4(dir / "fs.img", "/sub/hello.txt"), "hello from the host\n");
}

TEST(Ext4Image, ReadingAMissingFileIsAnErrorNamingIt) {
  EMBER_REQUIRE(have_e2fsprogs(), "mkfs.ext4/debugfs (e2fsprogs) not installed");
  TempDir dir;
  make_ext4_image(dir / "fs.img", {}, 4 << 20);
  try {
    read_file_from_ext4(dir / "fs.img", "/nope.txt");
    FAIL() << "expected an error";
  } catch (const common::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nope.txt"), std::string::npos) << e.what();
  }
}

TEST(Ext4Image, MissingSourceDirectoryIsAnError) {
  EMBER_REQUIRE(have_e2fsprogs(), "mkfs.ext4/debugfs (e2fsprogs) not installed");
  TempDir dir;
  EXPECT_THROW(make_ext4_image(dir / "fs.img", dir / "does-not-exist", 4 << 20), common::Error);
}

}  // namespace
}  // namespace ember::testing
