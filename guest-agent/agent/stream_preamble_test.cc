#include "guest-agent/agent/stream_preamble.h"

#include <gtest/gtest.h>

#include "vmm/common/error.h"

namespace ember::agent {
namespace {

TEST(StreamPreamble, RoundTrips) {
  StreamPreamble p{"c1", "exec-7", StreamKind::kStderr};
  std::string line = format_stream_preamble(p);
  EXPECT_EQ(line, "EMBER-STREAM 1 c1 exec-7 stderr\n");
  auto back = parse_stream_preamble(line.substr(0, line.size() - 1));
  EXPECT_EQ(back.container_id, "c1");
  EXPECT_EQ(back.exec_id, "exec-7");
  EXPECT_EQ(back.kind, StreamKind::kStderr);
}

TEST(StreamPreamble, DashIsTheInitProcess) {
  EXPECT_EQ(format_stream_preamble({"c1", "", StreamKind::kStdin}), "EMBER-STREAM 1 c1 - stdin\n");
  EXPECT_EQ(parse_stream_preamble("EMBER-STREAM 1 c1 - stdout").exec_id, "");
}

TEST(StreamPreamble, RejectsMalformedLines) {
  EXPECT_THROW(parse_stream_preamble(""), common::Error);
  EXPECT_THROW(parse_stream_preamble("EMBER-STREAM 1 c1 -"), common::Error);
  EXPECT_THROW(parse_stream_preamble("EMBER-STREAM 2 c1 - stdout"), common::Error);
  EXPECT_THROW(parse_stream_preamble("EMBER-STREAM 1 c1 - stdlog"), common::Error);
  EXPECT_THROW(parse_stream_preamble("HELLO 1 c1 - stdout"), common::Error);
  EXPECT_THROW(parse_stream_preamble("EMBER-STREAM 1 c1 - stdout extra"), common::Error);
}

}  // namespace
}  // namespace ember::agent
