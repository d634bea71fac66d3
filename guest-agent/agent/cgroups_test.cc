#include "guest-agent/agent/cgroups.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace ember::agent {
namespace {

namespace fs = std::filesystem;

class CgroupsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("ember-cgroups-test-" + std::to_string(::getpid()));
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  fs::path root_;
};

TEST_F(CgroupsTest, DetectsV2AndReadsItsFiles) {
  fs::path unified = root_ / "unified";
  write(root_ / "mountinfo",
        "30 1 0:26 / " + unified.string() + " rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n");
  auto cg = Cgroups::detect((root_ / "mountinfo").string());
  ASSERT_EQ(cg.version(), 2);
  fs::path c = unified / "ember" / "c1";
  write(c / "cpu.stat",
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 3\nnr_throttled "
        "1\nthrottled_usec 7\n");
  write(c / "memory.current", "4096000\n");
  write(c / "memory.max", "max\n");
  write(c / "memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n");
  write(c / "memory.stat", "anon 1000\nfile 2000\ninactive_file 300\n");
  write(c / "pids.current", "3\n");
  write(c / "pids.max", "max\n");
  write(c / "cgroup.procs", "10\n11\n");
  write(c / "child" / "cgroup.procs", "12\n");
  auto s = cg.stats("/ember/c1");
  EXPECT_EQ(s.version, 2);
  EXPECT_EQ(s.cpu_usage_usec, 1500u);
  EXPECT_EQ(s.cpu_system_usec, 500u);
  EXPECT_EQ(s.cpu_throttled_usec, 7u);
  EXPECT_EQ(s.mem_usage, 4096000u);
  EXPECT_EQ(s.mem_limit, UINT64_MAX);
  EXPECT_EQ(s.mem_oom_kills, 2u);
  EXPECT_EQ(s.mem_failcnt, 4u);
  EXPECT_EQ(s.mem_inactive_file, 300u);
  EXPECT_EQ(s.mem_rss, 1000u);
  EXPECT_EQ(s.mem_cache, 2000u);
  EXPECT_EQ(s.pids_current, 3u);
  EXPECT_EQ(s.pids_limit, 0u) << "max = no limit, reported as 0 like containerd";
  EXPECT_EQ(cg.oom_kills("/ember/c1"), 2u);
  auto pids = cg.pids("/ember/c1");
  EXPECT_EQ(pids.size(), 3u) << "children included";
}

TEST_F(CgroupsTest, DetectsV1PerControllerMountsAndReadsThem) {
  std::string mi;
  for (const char* ctl : {"cpu", "cpuacct", "memory", "pids"}) {
    mi += "40 31 0:40 / " + (root_ / ctl).string() + " rw - cgroup cgroup rw," + ctl + "\n";
  }
  mi += "41 31 0:41 / " + (root_ / "unified").string() + " rw - cgroup2 cgroup2 rw\n";
  write(root_ / "mountinfo", mi);
  auto cg = Cgroups::detect((root_ / "mountinfo").string());
  ASSERT_EQ(cg.version(), 1) << "memory on v1 means crun uses v1";
  std::string path = "/ember/c1";
  write(root_ / "cpuacct" / "ember/c1/cpuacct.usage", "3000000\n");
  write(root_ / "cpuacct" / "ember/c1/cpuacct.stat", "user 5\nsystem 2\n");
  write(root_ / "cpuacct" / "ember/c1/cpuacct.usage_percpu", "1000000 2000000 \n");
  write(root_ / "cpu" / "ember/c1/cpu.stat", "nr_periods 4\nnr_throttled 2\nthrottled_time 9000\n");
  write(root_ / "memory" / "ember/c1/memory.usage_in_bytes", "8192\n");
  write(root_ / "memory" / "ember/c1/memory.limit_in_bytes", "16777216\n");
  write(root_ / "memory" / "ember/c1/memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n");
  write(root_ / "memory" / "ember/c1/memory.stat",
        "cache 10\nrss 20\ntotal_cache 100\ntotal_rss 200\ntotal_inactive_file 50\n");
  write(root_ / "pids" / "ember/c1/pids.current", "2\n");
  write(root_ / "pids" / "ember/c1/pids.max", "64\n");
  auto s = cg.stats(path);
  EXPECT_EQ(s.version, 1);
  EXPECT_EQ(s.cpu_usage_usec, 3000u);
  EXPECT_EQ(s.cpu_percpu_nsec.size(), 2u);
  EXPECT_EQ(s.cpu_nr_throttled, 2u);
  EXPECT_EQ(s.cpu_throttled_usec, 9u);
  EXPECT_EQ(s.mem_usage, 8192u);
  EXPECT_EQ(s.mem_limit, 16777216u);
  EXPECT_EQ(s.mem_oom_kills, 1u);
  EXPECT_EQ(s.mem_rss, 200u) << "the hierarchical total_ figures";
  EXPECT_EQ(s.mem_cache, 100u);
  EXPECT_EQ(s.mem_inactive_file, 50u);
  EXPECT_EQ(s.pids_current, 2u);
  EXPECT_EQ(s.pids_limit, 64u);
  EXPECT_GT(s.cpu_user_usec, 0u);
  EXPECT_EQ(cg.dir(path, "cpuacct"), (root_ / "cpuacct" / "ember/c1").string());
}

TEST_F(CgroupsTest, MemorySampleReadsLimitHitsOomKillsAndRefaults) {
  fs::path unified = root_ / "unified";
  write(root_ / "mountinfo", "30 1 0:26 / " + unified.string() + " rw - cgroup2 cgroup2 rw\n");
  auto v2 = Cgroups::detect((root_ / "mountinfo").string());
  EXPECT_FALSE(v2.memory_sample("/ember/none").valid);
  fs::path c = unified / "ember" / "c1";
  write(c / "memory.max", "16777216\n");
  write(c / "memory.current", "16773120\n");
  write(c / "memory.events", "low 0\nhigh 0\nmax 25000\noom 0\noom_kill 0\n");
  write(c / "memory.stat",
        "anon 16465920\nfile 61440\nworkingset_refault_anon 3\nworkingset_refault_file 40000\n"
        "pgmajfault 1200\n");
  auto m = v2.memory_sample("/ember/c1");
  ASSERT_TRUE(m.valid);
  EXPECT_EQ(m.limit, 16777216u);
  EXPECT_EQ(m.usage, 16773120u);
  EXPECT_EQ(m.limit_hits, 25000u);
  EXPECT_EQ(m.oom_kills, 0u);
  EXPECT_EQ(m.refaults, 40003u);
  write(c / "memory.stat", "pgmajfault 1200\n");  // a kernel without workingset counters
  EXPECT_EQ(v2.memory_sample("/ember/c1").refaults, 1200u);

  std::string mi =
      "40 31 0:40 / " + (root_ / "memory").string() + " rw - cgroup cgroup rw,memory\n";
  write(root_ / "mountinfo1", mi);
  auto v1 = Cgroups::detect((root_ / "mountinfo1").string());
  fs::path m1 = root_ / "memory" / "ember" / "c1";
  write(m1 / "memory.limit_in_bytes", "16777216\n");
  write(m1 / "memory.usage_in_bytes", "16777216\n");
  write(m1 / "memory.failcnt", "77\n");
  write(m1 / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
  write(m1 / "memory.stat",
        "workingset_refault_file 5\ntotal_workingset_refault_anon 1\n"
        "total_workingset_refault_file 900\n");
  auto s1 = v1.memory_sample("/ember/c1");
  ASSERT_TRUE(s1.valid);
  EXPECT_EQ(s1.limit_hits, 77u);
  EXPECT_EQ(s1.oom_kills, 2u);
  EXPECT_EQ(s1.refaults, 901u) << "the hierarchical total_ figures";
}

TEST_F(CgroupsTest, RemoveDeletesEmptyCgroupDirectories) {
  fs::path unified = root_ / "unified";
  write(root_ / "mountinfo", "30 1 0:26 / " + unified.string() + " rw - cgroup2 cgroup2 rw\n");
  auto cg = Cgroups::detect((root_ / "mountinfo").string());
  fs::create_directories(unified / "ember" / "c1" / "sub");
  EXPECT_TRUE(cg.remove("/ember/c1").empty());
  EXPECT_FALSE(fs::exists(unified / "ember" / "c1"));
  EXPECT_TRUE(fs::exists(unified / "ember"));
}

}  // namespace
}  // namespace ember::agent
