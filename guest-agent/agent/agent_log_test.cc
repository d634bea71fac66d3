#include "guest-agent/agent/agent_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

namespace ember::agent {
namespace {

TEST(AgentLog, LinesCarryLevelAndMessage) {
  AgentLog log(4096);
  log.info("container c1 created");
  log.debug("hidden below the minimum level");
  auto chunk = log.read(0, 4096);
  EXPECT_NE(chunk.data.find("ember-agent info: container c1 created\n"), std::string::npos)
      << chunk.data;
  EXPECT_EQ(chunk.data.find("hidden"), std::string::npos);
  EXPECT_EQ(chunk.offset, 0u);
  EXPECT_EQ(chunk.next_offset, chunk.data.size());
}

TEST(AgentLog, RingKeepsTheNewestBytesAndOffsetsSayWhatWasLost) {
  AgentLog log(256);
  for (int i = 0; i < 100; ++i) log.info("line " + std::to_string(i));
  uint64_t end = log.end_offset();
  EXPECT_GT(end, 256u);
  auto chunk = log.read(0, 1 << 20);
  EXPECT_EQ(chunk.offset, end - 256) << "reading from 0 resumes at the oldest byte kept";
  EXPECT_EQ(chunk.data.size(), 256u);
  EXPECT_NE(chunk.data.find("line 99\n"), std::string::npos);
  EXPECT_EQ(chunk.data.find("line 1\n"), std::string::npos);

  // Incremental reads see exactly the new bytes.
  log.info("newest");
  auto more = log.read(end, 1 << 20);
  EXPECT_EQ(more.offset, end);
  EXPECT_NE(more.data.find("newest\n"), std::string::npos);
  EXPECT_EQ(more.next_offset, log.end_offset());
  EXPECT_TRUE(log.read(log.end_offset(), 100).data.empty());

  auto limited = log.read(end, 5);
  EXPECT_EQ(limited.data.size(), 5u);
  EXPECT_EQ(limited.next_offset, end + 5);
}

TEST(AgentLog, MirrorsToTheConsole) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  AgentLog log(1024);
  log.set_console(fds[1]);
  log.warn("to the console");
  log.set_console(-1);
  ::close(fds[1]);
  char buf[256] = {};
  ssize_t n = ::read(fds[0], buf, sizeof buf - 1);
  ::close(fds[0]);
  ASSERT_GT(n, 0);
  EXPECT_NE(std::string(buf).find("warn: to the console"), std::string::npos);
}

}  // namespace
}  // namespace ember::agent
