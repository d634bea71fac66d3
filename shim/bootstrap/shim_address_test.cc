#include "shim/bootstrap/shim_address.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "proto/ttrpc/socket.h"

namespace ember::shim {
namespace {

std::filesystem::path temp_dir() {
  char tmpl[] = "/tmp/shim-address-test.XXXXXX";
  return ::mkdtemp(tmpl);
}

TEST(ShimAddress, GroupsBySandboxIdAnnotation) {
  auto sandbox = nlohmann::json::parse(R"({"annotations": {"io.kubernetes.cri.container-type": "sandbox",
                                                             "io.kubernetes.cri.sandbox-id": "pod1"}})");
  auto app = nlohmann::json::parse(R"({"annotations": {"io.kubernetes.cri.container-type": "container",
                                                         "io.kubernetes.cri.sandbox-id": "pod1"}})");
  EXPECT_EQ(group_id(sandbox, "pod1"), "pod1");
  EXPECT_EQ(group_id(app, "web"), "pod1");
}

TEST(ShimAddress, OwnGroupAnnotationWinsAndIdIsTheFallback) {
  auto both = nlohmann::json::parse(R"({"annotations": {"io.ember.group": "g", "io.kubernetes.cri.sandbox-id": "p"}})");
  EXPECT_EQ(group_id(both, "x"), "g");
  EXPECT_EQ(group_id(nlohmann::json::parse(R"({"annotations": {}})"), "solo"), "solo");
  EXPECT_EQ(group_id(nlohmann::json::parse(R"({})"), "solo"), "solo");
  EXPECT_EQ(group_id(nlohmann::json::parse(R"({"annotations": {"io.kubernetes.cri.sandbox-id": ""}})"), "s"), "s");
}

TEST(ShimAddress, SocketPathIsShaOfAddressNamespaceAndGroup) {
  // runc's convention: sha256("<address>/<ns>/<group>") under /run/containerd/s.
  std::string path = socket_path("/run/containerd/containerd.sock", "k8s.io", "pod1");
  EXPECT_EQ(path, "/run/containerd/s/" + sha256_hex("/run/containerd/containerd.sock/k8s.io/pod1"));
  EXPECT_EQ(path.size(), std::string("/run/containerd/s/").size() + 64);
  EXPECT_NE(path, socket_path("/run/containerd/containerd.sock", "default", "pod1"));
  EXPECT_NE(path, socket_path("/other.sock", "k8s.io", "pod1"));
}

TEST(ShimAddress, Sha256MatchesKnownVector) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ShimAddress, AddressHasUnixScheme) {
  EXPECT_EQ(format_address("/run/containerd/s/ab"), "unix:///run/containerd/s/ab");
  EXPECT_EQ(parse_address("unix:///run/x"), "/run/x");
  EXPECT_EQ(parse_address("/run/x"), "/run/x");
  EXPECT_EQ(parse_address("abstract"), "");
}

TEST(ShimAddress, AddressFileIsWrittenAtomicallyAndReadBack) {
  auto dir = temp_dir();
  write_address_file(dir, "unix:///run/containerd/s/1");
  EXPECT_EQ(read_address_file(dir), "unix:///run/containerd/s/1");
  EXPECT_FALSE(std::filesystem::exists(dir / ".address"));
  write_address_file(dir, "unix:///run/containerd/s/2");
  EXPECT_EQ(read_address_file(dir), "unix:///run/containerd/s/2");
  std::filesystem::remove_all(dir);
  EXPECT_EQ(read_address_file(dir), "");
}

TEST(ShimAddress, SocketAcceptsOnlyWhenSomebodyListens) {
  auto dir = temp_dir();
  std::string path = dir / "s.sock";
  EXPECT_FALSE(socket_accepts(path));
  {
    auto listener = ttrpc::listen_unix(path);
    EXPECT_TRUE(socket_accepts(path));
  }
  // Closed listener, socket file left behind: stale.
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_FALSE(socket_accepts(path));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ember::shim
