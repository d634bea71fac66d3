#include "shim/log/shim_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "vmm/common/error.h"

namespace ember::shim {
namespace {

TEST(ShimLog, FormatsLogfmtLikeContainerdsShims) {
  auto t = std::chrono::system_clock::time_point(std::chrono::nanoseconds(1764194462123456789LL));
  std::string line = ShimLog::format(t, LogLevel::kInfo, "vm ready",
                                     {{"id", "web"}, {"boot_ms", 1234}, {"error", "a \"quoted\" = thing\n"}});
  EXPECT_EQ(line,
            "time=\"2025-11-26T22:01:02.123456789Z\" level=info msg=\"vm ready\" id=web boot_ms=1234 "
            "error=\"a \\\"quoted\\\" = thing\\n\"\n");
}

TEST(ShimLog, ValuesAreQuotedOnlyWhenNeeded) {
  EXPECT_EQ(logfmt_value("plain"), "plain");
  EXPECT_EQ(logfmt_value(""), "\"\"");
  EXPECT_EQ(logfmt_value("two words"), "\"two words\"");
  EXPECT_EQ(logfmt_value("k=v"), "\"k=v\"");
  EXPECT_EQ(logfmt_value(std::string("\x01", 1)), "\"\\x01\"");
}

TEST(ShimLog, WritesOneLinePerEventToEverySinkAboveTheLevel) {
  char tmpl[] = "/tmp/shim-log-test.XXXXXX";
  std::filesystem::path dir = ::mkdtemp(tmpl);
  ShimLog log;
  log.add_file(dir / "debug.log");
  log.set_base_fields({{"namespace", "k8s.io"}});
  log.debug("hidden");
  log.info("shown", {{"id", "c"}});
  log.set_level(LogLevel::kDebug);
  log.debug("now shown");
  std::ifstream in(dir / "debug.log");
  std::string l1, l2, l3;
  std::getline(in, l1);
  std::getline(in, l2);
  EXPECT_FALSE(std::getline(in, l3));
  EXPECT_NE(l1.find("level=info msg=shown id=c namespace=k8s.io"), std::string::npos) << l1;
  EXPECT_NE(l2.find("level=debug msg=\"now shown\""), std::string::npos) << l2;
  EXPECT_EQ(log.lines(), 2u);
  std::filesystem::remove_all(dir);
}

TEST(ShimLog, AFullFifoWithoutReaderNeverBlocks) {
  char tmpl[] = "/tmp/shim-log-test.XXXXXX";
  std::filesystem::path dir = ::mkdtemp(tmpl);
  std::string fifo = dir / "log";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // containerd holds the read end (O_RDWR|O_NONBLOCK) but does not read.
  common::UniqueFd reader(::open(fifo.c_str(), O_RDWR | O_NONBLOCK));
  ShimLog log;
  log.add_sink(common::UniqueFd(::open(fifo.c_str(), O_WRONLY | O_NONBLOCK)));
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 5000; ++i) log.info("filling the pipe", {{"i", i}});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  std::filesystem::remove_all(dir);
}

TEST(ShimLog, ParsesLevels) {
  EXPECT_EQ(parse_log_level("DEBUG"), LogLevel::kDebug);
  EXPECT_EQ(parse_log_level("warning"), LogLevel::kWarn);
  EXPECT_THROW(parse_log_level("verbose"), common::Error);
}

}  // namespace
}  // namespace ember::shim
