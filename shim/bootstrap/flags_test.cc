#include "shim/bootstrap/flags.h"

#include <gtest/gtest.h>

namespace ember::shim {
namespace {

TEST(ShimFlags, ParsesContainerdStartArgv) {
  // containerd 1.6.20's exact argv for `start` (reference §1.2).
  ShimFlags f = parse_flags({"-namespace", "k8s.io", "-address", "/run/containerd/containerd.sock",
                             "-publish-binary", "/usr/bin/containerd", "-id", "abc", "start"});
  EXPECT_EQ(f.ns, "k8s.io");
  EXPECT_EQ(f.address, "/run/containerd/containerd.sock");
  EXPECT_EQ(f.publish_binary, "/usr/bin/containerd");
  EXPECT_EQ(f.id, "abc");
  EXPECT_EQ(f.action, "start");
  EXPECT_FALSE(f.debug);
}

TEST(ShimFlags, ParsesDeleteWithBundleAndDebug) {
  ShimFlags f = parse_flags({"-namespace", "default", "-address", "/a.sock", "-publish-binary", "/c", "-id", "x",
                             "-bundle", "/run/b", "-debug", "delete"});
  EXPECT_EQ(f.bundle, "/run/b");
  EXPECT_TRUE(f.debug);
  EXPECT_EQ(f.action, "delete");
}

TEST(ShimFlags, AcceptsDoubleDashAndEqualsForms) {
  ShimFlags f = parse_flags({"--namespace=ns", "--id=i", "-debug=false", "-v", "start", "extra"});
  EXPECT_EQ(f.ns, "ns");
  EXPECT_EQ(f.id, "i");
  EXPECT_FALSE(f.debug);
  EXPECT_TRUE(f.version);
  EXPECT_EQ(f.action, "start");
  ASSERT_EQ(f.args.size(), 1u);
  EXPECT_EQ(f.args[0], "extra");
}

TEST(ShimFlags, BooleanNeverConsumesTheNextArgument) {
  // Go's flag: "-debug true" is -debug followed by the positional "true".
  ShimFlags f = parse_flags({"-debug", "true"});
  EXPECT_TRUE(f.debug);
  EXPECT_EQ(f.action, "true");
}

TEST(ShimFlags, StopsAtFirstPositionalAndAtDoubleDash) {
  ShimFlags f = parse_flags({"-id", "a", "delete", "-id", "b"});
  EXPECT_EQ(f.id, "a");
  EXPECT_EQ(f.action, "delete");
  EXPECT_EQ(f.args, (std::vector<std::string>{"-id", "b"}));
  ShimFlags g = parse_flags({"--", "-id"});
  EXPECT_EQ(g.action, "-id");
}

TEST(ShimFlags, NoActionMeansDaemon) {
  ShimFlags f = parse_flags({"-namespace", "n", "-id", "x", "-address", "/a"});
  EXPECT_EQ(f.action, "");
}

TEST(ShimFlags, RejectsUnknownFlagMissingValueAndBadBool) {
  EXPECT_THROW(parse_flags({"-bogus", "start"}), FlagError);
  EXPECT_THROW(parse_flags({"-id"}), FlagError);
  EXPECT_THROW(parse_flags({"-debug=maybe"}), FlagError);
  EXPECT_THROW(parse_flags({"---id", "x"}), FlagError);
  try {
    parse_flags({"-bogus"});
  } catch (const FlagError& e) {
    EXPECT_STREQ(e.what(), "flag provided but not defined: -bogus");
  }
}

TEST(ShimFlags, FormatRoundTripsForTheDaemon) {
  ShimFlags f;
  f.ns = "n";
  f.id = "i";
  f.address = "/a";
  f.publish_binary = "/p";
  f.debug = true;
  ShimFlags g = parse_flags(format_flags(f));
  EXPECT_EQ(g.ns, "n");
  EXPECT_EQ(g.id, "i");
  EXPECT_EQ(g.address, "/a");
  EXPECT_EQ(g.publish_binary, "/p");
  EXPECT_TRUE(g.debug);
  EXPECT_EQ(g.action, "");
}

}  // namespace
}  // namespace ember::shim
