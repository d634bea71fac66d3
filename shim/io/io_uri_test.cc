#include "shim/io/io_uri.h"

#include <gtest/gtest.h>

namespace ember::shim {
namespace {

TEST(IoUri, EmptyMeansNoStream) { EXPECT_EQ(parse_io_uri("").kind, IoTarget::Kind::kNone); }

TEST(IoUri, PlainPathIsAFifo) {
  IoTarget t = parse_io_uri("/run/containerd/fifo/123/web-stdout");
  EXPECT_EQ(t.kind, IoTarget::Kind::kFifo);
  EXPECT_EQ(t.path, "/run/containerd/fifo/123/web-stdout");
}

TEST(IoUri, FileSchemeAppendsToAFile) {
  IoTarget t = parse_io_uri("file:///var/log/my%20ctr.log");
  EXPECT_EQ(t.kind, IoTarget::Kind::kFile);
  EXPECT_EQ(t.path, "/var/log/my ctr.log");
}

TEST(IoUri, BinarySchemeTurnsTheQueryIntoArguments) {
  IoTarget t = parse_io_uri("binary:///usr/bin/logger?tag=web&verbose&level=info");
  EXPECT_EQ(t.kind, IoTarget::Kind::kBinary);
  EXPECT_EQ(t.path, "/usr/bin/logger");
  EXPECT_EQ(t.args, (std::vector<std::string>{"tag", "web", "verbose", "level", "info"}));
}

TEST(IoUri, BinaryQueryKeepsTheFirstValueOfARepeatedKeyAndDecodes) {
  IoTarget t = parse_io_uri("binary:///l?k=a+b&k=c&x=%2Fp");
  EXPECT_EQ(t.args, (std::vector<std::string>{"k", "a b", "x", "/p"}));
}

TEST(IoUri, RejectsUnknownSchemesHostPartsAndBadEncoding) {
  EXPECT_THROW(parse_io_uri("fifo://x"), common::Error);
  EXPECT_THROW(parse_io_uri("tcp://host:1"), common::Error);
  EXPECT_THROW(parse_io_uri("file://host/var/log"), common::Error);
  EXPECT_THROW(parse_io_uri("file:///bad%zz"), common::Error);
  try {
    parse_io_uri("syslog:///x");
  } catch (const common::Error& e) {
    EXPECT_STREQ(e.what(),
                 "stdio URI \"syslog:///x\": unsupported scheme \"syslog\" (expected a FIFO path, file:// or binary://)");
  }
}

}  // namespace
}  // namespace ember::shim
