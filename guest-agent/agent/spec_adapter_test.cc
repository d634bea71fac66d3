#include "guest-agent/agent/spec_adapter.h"

#include <gtest/gtest.h>

#include "vmm/common/error.h"

namespace ember::agent {
namespace {

using nlohmann::json;

json cri_app_spec() {
  return json::parse(R"({
    "ociVersion": "1.0.2-dev",
    "process": {"terminal": true, "user": {"uid": 0, "gid": 0}, "args": ["/pause"],
                "env": ["PATH=/bin"], "cwd": "/", "apparmorProfile": "cri-containerd.apparmor.d",
                "capabilities": {"bounding": ["CAP_CHOWN"]}, "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                "noNewPrivileges": true},
    "root": {"path": "rootfs", "readonly": true},
    "hostname": "pod",
    "mounts": [
      {"destination": "/proc", "type": "proc", "source": "proc"},
      {"destination": "/dev/shm", "type": "bind", "source": "/run/containerd/sandboxes/x/shm", "options": ["rbind", "ro"]},
      {"destination": "/etc/hosts", "type": "bind", "source": "/var/lib/containerd/sandboxes/x/hosts", "options": ["rbind"]},
      {"destination": "/data", "source": "/srv/data", "options": ["rbind", "rw"]}
    ],
    "hooks": {"prestart": [{"path": "/usr/bin/hook"}]},
    "annotations": {"io.kubernetes.cri.sandbox-id": "sb"},
    "linux": {
      "cgroupsPath": "kubepods-besteffort-pod1.slice:cri-containerd:abc",
      "resources": {"memory": {"limit": 1048576}},
      "namespaces": [
        {"type": "pid"},
        {"type": "ipc", "path": "/proc/42/ns/ipc"},
        {"type": "uts", "path": "/proc/42/ns/uts"},
        {"type": "mount"},
        {"type": "network", "path": "/var/run/netns/cni-1"}
      ],
      "seccomp": {"defaultAction": "SCMP_ACT_ERRNO"},
      "mountLabel": "system_u:object_r:container_file_t"
    }
  })");
}

SpecAdaptOptions options() {
  SpecAdaptOptions o;
  o.rootfs_path = "/run/ember/containers/c1/rootfs";
  o.cgroups_path = "/ember/c1";
  o.path_exists = [](const std::string& p) { return p == "/srv/data"; };
  return o;
}

const json* find_mount(const json& spec, const std::string& dest) {
  for (const auto& m : spec["mounts"]) {
    if (m["destination"] == dest) return &m;
  }
  return nullptr;
}

const json* find_namespace(const json& spec, const std::string& type) {
  for (const auto& ns : spec["linux"]["namespaces"]) {
    if (ns["type"] == type) return &ns;
  }
  return nullptr;
}

TEST(SpecAdapter, RootAndCgroupPointIntoTheGuest) {
  auto out = adapt_container_spec(cri_app_spec().dump(), options()).spec;
  EXPECT_EQ(out["root"]["path"], "/run/ember/containers/c1/rootfs");
  EXPECT_EQ(out["root"]["readonly"], false);
  EXPECT_EQ(out["linux"]["cgroupsPath"], "/ember/c1");
}

TEST(SpecAdapter, HostNamespacePathsAreDroppedOrMappedToTheSandbox) {
  auto o = options();
  o.sandbox_namespace = [](const std::string& type) -> std::optional<std::string> {
    if (type == "ipc") return "/proc/7/ns/ipc";
    return std::nullopt;
  };
  auto out = adapt_container_spec(cri_app_spec().dump(), o);
  EXPECT_EQ(find_namespace(out.spec, "network"), nullptr) << "the VM's network is the pod's";
  ASSERT_NE(find_namespace(out.spec, "ipc"), nullptr);
  EXPECT_EQ((*find_namespace(out.spec, "ipc"))["path"], "/proc/7/ns/ipc");
  ASSERT_NE(find_namespace(out.spec, "uts"), nullptr);
  EXPECT_FALSE(find_namespace(out.spec, "uts")->contains("path"))
      << "unknown sandbox: a new namespace";
  EXPECT_NE(find_namespace(out.spec, "pid"), nullptr);
  EXPECT_NE(find_namespace(out.spec, "mount"), nullptr);
  EXPECT_FALSE(out.notes.empty());
}

TEST(SpecAdapter, HostBindMountsGoAndDevShmBecomesTmpfs) {
  auto out = adapt_container_spec(cri_app_spec().dump(), options()).spec;
  EXPECT_EQ(find_mount(out, "/etc/hosts"), nullptr);
  ASSERT_NE(find_mount(out, "/data"), nullptr) << "a source that exists here is kept";
  ASSERT_NE(find_mount(out, "/proc"), nullptr);
  const json* shm = find_mount(out, "/dev/shm");
  ASSERT_NE(shm, nullptr);
  EXPECT_EQ((*shm)["type"], "tmpfs");
  EXPECT_FALSE(out.contains("hooks"));
}

TEST(SpecAdapter, ProcessIsKeptButFollowsTheRequestedStdio) {
  auto o = options();
  o.terminal = false;
  auto out = adapt_container_spec(cri_app_spec().dump(), o).spec;
  const json& p = out["process"];
  EXPECT_EQ(p["terminal"], false);
  EXPECT_EQ(p["args"], json::array({"/pause"}));
  EXPECT_EQ(p["env"], json::array({"PATH=/bin"}));
  EXPECT_EQ(p["capabilities"]["bounding"], json::array({"CAP_CHOWN"}));
  EXPECT_EQ(p["rlimits"][0]["hard"], 1024);
  EXPECT_EQ(p["noNewPrivileges"], true);
  EXPECT_FALSE(p.contains("apparmorProfile")) << "no AppArmor in the guest";
  EXPECT_FALSE(out["linux"].contains("mountLabel"));
  EXPECT_EQ(out["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
  EXPECT_EQ(out["linux"]["resources"]["memory"]["limit"], 1048576);

  o.terminal = true;
  o.width = 120;
  o.height = 40;
  auto tty = adapt_container_spec(cri_app_spec().dump(), o).spec;
  EXPECT_EQ(tty["process"]["terminal"], true);
  EXPECT_EQ(tty["process"]["consoleSize"]["width"], 120);
  EXPECT_EQ(tty["process"]["consoleSize"]["height"], 40);
}

TEST(SpecAdapter, LabelsStayWhenTheGuestHasTheLsm) {
  auto o = options();
  o.has_apparmor = true;
  o.has_selinux = true;
  auto out = adapt_container_spec(cri_app_spec().dump(), o).spec;
  EXPECT_TRUE(out["process"].contains("apparmorProfile"));
  EXPECT_TRUE(out["linux"].contains("mountLabel"));
}

TEST(SpecAdapter, RejectsWhatIsNotAnOciSpec) {
  EXPECT_THROW(adapt_container_spec("{not json", options()), common::Error);
  EXPECT_THROW(adapt_container_spec("[]", options()), common::Error);
  EXPECT_THROW(adapt_container_spec(R"({"ociVersion":"1.0.2"})", options()), common::Error);
  EXPECT_THROW(adapt_container_spec(R"({"process":{},"mounts":{}})", options()), common::Error);
  EXPECT_THROW(adapt_container_spec(R"({"process":{},"mounts":[{"type":"bind"}]})", options()),
               common::Error);
  EXPECT_THROW(
      adapt_container_spec(R"({"process":{},"linux":{"namespaces":[{"path":"/x"}]}})", options()),
      common::Error);
}

TEST(SpecAdapter, ExecProcessNeedsArgs) {
  auto o = options();
  o.terminal = true;
  auto p = adapt_process_spec(R"({"args":["sh"],"cwd":"/","selinuxLabel":"x"})", o);
  EXPECT_EQ(p["terminal"], true);
  EXPECT_FALSE(p.contains("selinuxLabel"));
  EXPECT_THROW(adapt_process_spec(R"({"cwd":"/"})", o), common::Error);
  EXPECT_THROW(adapt_process_spec(R"({"args":[]})", o), common::Error);
  EXPECT_THROW(adapt_process_spec("nope", o), common::Error);
}

}  // namespace
}  // namespace ember::agent
