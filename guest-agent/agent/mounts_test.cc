#include "guest-agent/agent/mounts.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace ember::agent {
namespace {

TEST(MountOptions, FlagsAndDataAreSeparated) {
  auto o = parse_mount_options({"ro", "noatime", "nosuid", "errors=remount-ro", "discard"});
  EXPECT_EQ(o.flags, static_cast<unsigned long>(MS_RDONLY | MS_NOATIME | MS_NOSUID));
  EXPECT_EQ(o.data, "errors=remount-ro,discard");
  EXPECT_FALSE(o.bind);
}

TEST(MountOptions, LaterOptionsWinAndBindIsRecognised) {
  auto o = parse_mount_options({"ro", "rw", "rbind", "rprivate", "dev", "nodev"});
  EXPECT_EQ(o.flags, static_cast<unsigned long>(MS_NODEV));
  EXPECT_TRUE(o.bind);
  EXPECT_TRUE(o.recursive);
  EXPECT_EQ(o.data, "");
}

TEST(RemoveTree, RemovesNestedFilesAndReportsMissingAsDone) {
  namespace fs = std::filesystem;
  fs::path root = fs::temp_directory_path() / ("ember-remove-tree-" + std::to_string(::getpid()));
  fs::create_directories(root / "a" / "b");
  std::ofstream(root / "a" / "b" / "file") << "x";
  fs::create_symlink("/etc", root / "a" / "link-to-etc");
  EXPECT_TRUE(remove_tree(root.string()));
  EXPECT_FALSE(fs::exists(root));
  EXPECT_TRUE(fs::exists("/etc/hostname") || fs::exists("/etc")) << "symlink target untouched";
  EXPECT_TRUE(remove_tree(root.string()));
}

TEST(MakeDirs, CreatesParents) {
  namespace fs = std::filesystem;
  fs::path root = fs::temp_directory_path() / ("ember-make-dirs-" + std::to_string(::getpid()));
  make_dirs((root / "x" / "y" / "z").string());
  EXPECT_TRUE(fs::is_directory(root / "x" / "y" / "z"));
  make_dirs((root / "x" / "y" / "z").string());
  fs::remove_all(root);
}

}  // namespace
}  // namespace ember::agent
