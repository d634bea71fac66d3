#include "shim/rootfs/rootfs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "shim/util/run_command.h"
#include "vmm/common/error.h"

namespace ember::shim {
namespace {

namespace fs = std::filesystem;

class RootfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/shim-rootfs-test.XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    fs::create_directories(dir_ / "tree" / "etc");
    fs::create_directories(dir_ / "bundle");
    std::ofstream(dir_ / "tree" / "etc" / "motd") << "hello from the image\n";
    std::ofstream(dir_ / "tree" / "big") << std::string(100000, 'x');
    fs::create_symlink("etc/motd", dir_ / "tree" / "link");
    fs::create_hard_link(dir_ / "tree" / "big", dir_ / "tree" / "big-again");
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(RootfsTest, MeasuresDataInBlocksCountingHardLinksOnce) {
  TreeUsage u = measure_tree(dir_ / "tree");
  // dirs: tree, etc (2 x 4 KiB); motd 4 KiB; big 100000 -> 102400; link inline.
  EXPECT_EQ(u.bytes, 2 * 4096u + 4096u + 102400u);
  EXPECT_EQ(u.inodes, 5u);  // tree, etc, motd, big(+big-again), link
  EXPECT_THROW(measure_tree((dir_ / "missing").string()), common::Error);
}

TEST_F(RootfsTest, ImageSizeCoversContentPlusSlackMibAligned) {
  TreeUsage u{200u << 20, 1000};
  uint64_t size = ext4_image_size(u, 64u << 20);
  EXPECT_GE(size, (200u << 20) + (64u << 20));
  EXPECT_EQ(size % (1 << 20), 0u);
  EXPECT_EQ(ext4_image_size({0, 0}, 0), 32u << 20);
}

TEST_F(RootfsTest, BindSnapshotBecomesAnExt4ImageWithTheFiles) {
  RootfsRequest req;
  req.mounts = {{"bind", (dir_ / "tree").string(), "", {"rbind", "ro"}}};
  req.bundle = dir_ / "bundle";
  req.image_path = dir_ / "bundle" / "rootfs.ext4";
  req.slack_bytes = 1 << 20;
  ShimLog log;
  RootfsDisk disk = prepare_rootfs(req, log);
  EXPECT_EQ(disk.path, req.image_path);
  EXPECT_TRUE(disk.owned);
  EXPECT_EQ(disk.fstype, "ext4");
  EXPECT_EQ(fs::file_size(disk.path), disk.size_bytes);
  std::string motd = run_checked("debugfs", {"debugfs", "-R", "cat /etc/motd", disk.path});
  EXPECT_NE(motd.find("hello from the image"), std::string::npos) << motd;
  cleanup_rootfs(req.bundle, disk.path, log);
  EXPECT_FALSE(fs::exists(disk.path));
  cleanup_rootfs(req.bundle, disk.path, log);  // idempotent
}

TEST_F(RootfsTest, NoMountsUsesTheSpecRootRelativeToTheBundle) {
  fs::create_directory_symlink(dir_ / "tree", dir_ / "bundle" / "myroot");
  RootfsRequest req;
  req.bundle = dir_ / "bundle";
  req.spec_root_path = "myroot/";
  req.image_path = dir_ / "img.ext4";
  req.slack_bytes = 0;
  ShimLog log;
  RootfsDisk disk = prepare_rootfs(req, log);
  EXPECT_TRUE(fs::exists(disk.path));
}

TEST_F(RootfsTest, UnsupportedMountsAreRefusedByName) {
  RootfsRequest req;
  req.bundle = dir_ / "bundle";
  req.image_path = dir_ / "img.ext4";
  req.mounts = {{"9p", "share", "", {}}};
  ShimLog log;
  try {
    prepare_rootfs(req, log);
    FAIL() << "no error";
  } catch (const common::Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"9p\""), std::string::npos) << e.what();
  }
  req.mounts = {{"bind", "/a", "", {}}, {"bind", "/b", "", {}}};
  EXPECT_THROW(prepare_rootfs(req, log), common::Error);
}

TEST_F(RootfsTest, SerialIsFirecrackersDeviceIdOfTheFile) {
  std::string f = dir_ / "tree" / "big";
  struct stat st {};
  ASSERT_EQ(::stat(f.c_str(), &st), 0);
  std::string expected = std::to_string(st.st_dev) + std::to_string(st.st_rdev) + std::to_string(st.st_ino);
  EXPECT_EQ(block_serial(f), expected.substr(0, 20));
  EXPECT_NE(block_serial(f), block_serial(dir_ / "tree" / "etc" / "motd"));
  EXPECT_THROW(block_serial("/nonexistent"), common::SystemError);
}

}  // namespace
}  // namespace ember::shim
