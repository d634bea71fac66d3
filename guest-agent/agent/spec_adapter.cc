#include "guest-agent/agent/spec_adapter.h"

#include <algorithm>

#include "vmm/common/error.h"

namespace ember::agent {
namespace {

using nlohmann::json;

json parse_object(const std::string& text, const std::string& what) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw common::Error(what + " is not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw common::Error(what + " is not a JSON object");
  return j;
}

bool is_bind_mount(const json& m) {
  if (m.value("type", "") == "bind") return true;
  if (auto it = m.find("options"); it != m.end() && it->is_array()) {
    for (const auto& o : *it) {
      if (o.is_string() && (o == "bind" || o == "rbind")) return true;
    }
  }
  return false;
}

void adapt_process(json& process, const SpecAdaptOptions& o, std::vector<std::string>& notes) {
  process["terminal"] = o.terminal;
  if (o.terminal && o.width && o.height) {
    process["consoleSize"] = {{"height", o.height}, {"width", o.width}};
  } else {
    process.erase("consoleSize");
  }
  if (!o.has_apparmor && process.contains("apparmorProfile")) {
    notes.push_back("dropped apparmorProfile (no AppArmor in the guest)");
    process.erase("apparmorProfile");
  }
  if (!o.has_selinux && process.contains("selinuxLabel")) {
    notes.push_back("dropped selinuxLabel (no SELinux in the guest)");
    process.erase("selinuxLabel");
  }
}

json dev_shm_tmpfs() {
  return {{"destination", "/dev/shm"},
          {"type", "tmpfs"},
          {"source", "shm"},
          {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}};
}

}  // namespace

AdaptedSpec adapt_container_spec(const std::string& spec_json, const SpecAdaptOptions& o) {
  AdaptedSpec out;
  json& spec = out.spec;
  spec = parse_object(spec_json, "OCI spec");
  if (!spec.contains("process") || !spec["process"].is_object())
    throw common::Error("OCI spec has no process");
  if (spec.contains("linux") && !spec["linux"].is_object())
    throw common::Error("OCI spec field linux is not an object");
  auto& notes = out.notes;

  spec["root"] = {{"path", o.rootfs_path}, {"readonly", o.readonly_root}};
  adapt_process(spec["process"], o, notes);

  if (spec.contains("hooks")) {
    notes.push_back("dropped hooks (host binaries)");
    spec.erase("hooks");
  }

  if (auto it = spec.find("mounts"); it != spec.end()) {
    if (!it->is_array()) throw common::Error("OCI spec field mounts is not an array");
    json kept = json::array();
    bool have_shm = false;
    for (auto& m : *it) {
      if (!m.is_object() || !m.contains("destination") || !m["destination"].is_string()) {
        throw common::Error("OCI spec has a mount without a destination");
      }
      std::string dest = m["destination"];
      if (dest == "/dev/shm") {
        if (!have_shm) kept.push_back(dev_shm_tmpfs());
        have_shm = true;
        continue;
      }
      if (is_bind_mount(m)) {
        std::string source = m.value("source", "");
        if (source.empty() || !o.path_exists || !o.path_exists(source)) {
          notes.push_back("dropped bind mount " + source + " -> " + dest +
                          " (source not in the guest)");
          continue;
        }
      }
      kept.push_back(m);
    }
    *it = std::move(kept);
  }

  if (!spec.contains("linux")) spec["linux"] = json::object();
  json& lx = spec["linux"];
  lx["cgroupsPath"] = o.cgroups_path;
  if (!o.has_selinux && lx.contains("mountLabel")) {
    notes.push_back("dropped linux.mountLabel (no SELinux in the guest)");
    lx.erase("mountLabel");
  }
  if (auto it = lx.find("namespaces"); it != lx.end()) {
    if (!it->is_array()) throw common::Error("OCI spec field linux.namespaces is not an array");
    json kept = json::array();
    for (auto& ns : *it) {
      if (!ns.is_object() || !ns.contains("type") || !ns["type"].is_string()) {
        throw common::Error("OCI spec has a namespace without a type");
      }
      std::string type = ns["type"];
      if (!ns.contains("path")) {
        kept.push_back(ns);
        continue;
      }
      std::string host_path = ns.value("path", "");
      if (type == "network") {
        notes.push_back("network namespace " + host_path + " -> the guest's network");
        continue;
      }
      std::optional<std::string> guest =
          o.sandbox_namespace ? o.sandbox_namespace(type) : std::nullopt;
      if (guest) {
        notes.push_back(type + " namespace " + host_path + " -> sandbox's " + *guest);
        ns["path"] = *guest;
      } else {
        notes.push_back(type + " namespace " + host_path + " -> a new one");
        ns.erase("path");
      }
      kept.push_back(ns);
    }
    *it = std::move(kept);
  }
  return out;
}

nlohmann::json adapt_process_spec(const std::string& process_json, const SpecAdaptOptions& o) {
  json process = parse_object(process_json, "OCI process");
  if (!process.contains("args") || !process["args"].is_array() || process["args"].empty()) {
    throw common::Error("OCI process has no args");
  }
  std::vector<std::string> notes;
  adapt_process(process, o, notes);
  return process;
}

}  // namespace ember::agent
