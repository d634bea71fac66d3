#include "vmm/logger/logger.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "vmm/common/error.h"
#include "vmm/logger/metrics.h"

namespace ember::vmm {
namespace {

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "/logger_test_" + std::to_string(::getpid()) + "_" + name;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Logger, LineHasFirecrackerFormatWithoutLevelAndOriginByDefault) {
  Logger logger("my-vm");
  std::string line = logger.format(LogLevel::kInfo, __FILE__, 7, "hello");
  std::regex re(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9} \[my-vm:main\] hello\n$)");
  EXPECT_TRUE(std::regex_match(line, re)) << line;
}

TEST(Logger, ShowLevelAndOriginAddFieldsInFirecrackerOrder) {
  Logger logger;
  LoggerConfig config;
  config.show_level = true;
  config.show_log_origin = true;
  logger.configure(config);
  std::string line = logger.format(LogLevel::kWarning, __FILE__, 42, "careful");
  EXPECT_NE(line.find(" [anonymous-instance:main:WARN:vmm/logger/logger_test.cc:42] careful\n"),
            std::string::npos)
      << line;
}

TEST(Logger, ThreadNameComesFromPthreadName) {
  Logger logger;
  std::string line;
  std::thread t([&] {
    pthread_setname_np(pthread_self(), "fc_api");
    line = logger.format(LogLevel::kInfo, nullptr, 0, "x");
  });
  t.join();
  EXPECT_NE(line.find("[anonymous-instance:fc_api] x"), std::string::npos) << line;
}

TEST(Logger, WritesOneLinePerMessageToLogPathAndFiltersByLevel) {
  std::string path = temp_path("levels.log");
  ::unlink(path.c_str());
  Logger logger;
  LoggerConfig config;
  config.log_path = path;
  config.level = LogLevel::kWarning;
  logger.configure(config);
  LOG_INFO(logger, "not shown");
  LOG_WARN(logger, "shown warn");
  LOG_ERROR(logger, "shown error");
  std::string text = read_file(path);
  EXPECT_EQ(text.find("not shown"), std::string::npos);
  EXPECT_NE(text.find("] shown warn\n"), std::string::npos);
  EXPECT_NE(text.find("] shown error\n"), std::string::npos);
  ::unlink(path.c_str());
}

TEST(Logger, UpdateWithoutLevelFallsBackToInfoAndKeepsOtherFields) {
  Logger logger;
  LoggerUpdate u;
  u.level = LogLevel::kDebug;
  u.show_level = true;
  logger.update(u);
  EXPECT_TRUE(logger.enabled(LogLevel::kDebug));
  logger.update(LoggerUpdate{});
  EXPECT_FALSE(logger.enabled(LogLevel::kDebug));
  EXPECT_TRUE(logger.enabled(LogLevel::kInfo));
  EXPECT_TRUE(logger.config().show_level);
}

TEST(Logger, OffDisablesEverything) {
  Logger logger;
  LoggerUpdate u;
  u.level = LogLevel::kOff;
  logger.update(u);
  EXPECT_FALSE(logger.enabled(LogLevel::kError));
}

TEST(Logger, ModuleFilterKeepsOnlyMatchingOrigins) {
  std::string path = temp_path("module.log");
  ::unlink(path.c_str());
  Logger logger;
  LoggerUpdate u;
  u.log_path = path;
  u.module = "vmm/logger";
  logger.update(u);
  logger.log(LogLevel::kInfo, __FILE__, 1, "kept");
  logger.log(LogLevel::kInfo, "/elsewhere/vmm/api/x.cc", 1, "dropped");
  std::string text = read_file(path);
  EXPECT_NE(text.find("kept"), std::string::npos);
  EXPECT_EQ(text.find("dropped"), std::string::npos);
  ::unlink(path.c_str());
}

TEST(Logger, UnopenableLogPathThrowsAndKeepsPreviousTarget) {
  Logger logger;
  try {
    LoggerUpdate u;
    u.log_path = "/nonexistent-dir/x.log";
    logger.update(u);
    FAIL() << "expected an error";
  } catch (const common::SystemError& e) {
    EXPECT_EQ(e.error_code(), ENOENT);
  }
  EXPECT_FALSE(logger.config().log_path.has_value());
}

TEST(Logger, FailedWriteCountsMissedLogLine) {
  Metrics metrics;
  Logger logger;
  logger.set_metrics(&metrics);
  LoggerUpdate u;
  u.log_path = "/dev/full";  // every write fails with ENOSPC
  logger.update(u);
  LOG_INFO(logger, "lost");
  EXPECT_EQ(metrics.counter("logger", "missed_log_count").load(), 1u);
}

}  // namespace
}  // namespace ember::vmm
