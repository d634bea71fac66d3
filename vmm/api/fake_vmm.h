// A small in-memory Vmm for the control plane's unit tests: it keeps the
// state machine of vmm.h (running, paused, exited), records the runtime
// calls it receives and applies drive updates to its resources, so tests can
// check what the controller asked of the machine without KVM.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "vmm/common/error.h"
#include "vmm/vmm.h"

namespace ember::vmm::api::testing {

class FakeVmm : public Vmm {
 public:
  explicit FakeVmm(VmResources resources) : resources_(std::move(resources)) {}

  VmState state() const override { return state_; }
  void pause() override {
    calls.push_back("pause");
    state_ = VmState::kPaused;
  }
  void resume() override {
    calls.push_back("resume");
    state_ = VmState::kRunning;
  }
  void send_ctrl_alt_del() override { calls.push_back("ctrl-alt-del"); }
  void stop(int exit_code) override {
    calls.push_back("stop " + std::to_string(exit_code));
    finish(VmExit{exit_code, "stop requested"});
  }
  VmExit wait() override { return exit_; }
  std::optional<VmExit> try_wait() override {
    if (state_ == VmState::kExited) return exit_;
    return std::nullopt;
  }
  void on_exit(std::function<void(const VmExit&)> callback) override {
    on_exit_ = std::move(callback);
  }
  void update_drive(const DriveUpdate& update) override {
    calls.push_back("update_drive " + update.drive_id);
    for (auto& d : resources_.drives) {
      if (d.drive_id == update.drive_id) {
        if (update.path_on_host) d.path_on_host = update.path_on_host;
        return;
      }
    }
    throw common::Error("no drive \"" + update.drive_id + "\"");
  }
  void update_network_interface(const NetworkInterfaceUpdate& update) override {
    calls.push_back("update_net " + update.iface_id);
  }
  const VmResources& resources() const override { return resources_; }

  // As if the guest had ended.
  void finish(VmExit exit) {
    exit_ = std::move(exit);
    state_ = VmState::kExited;
    if (on_exit_) on_exit_(exit_);
  }

  std::vector<std::string> calls;

 private:
  VmResources resources_;
  VmState state_ = VmState::kRunning;
  VmExit exit_;
  std::function<void(const VmExit&)> on_exit_;
};

}  // namespace ember::vmm::api::testing
