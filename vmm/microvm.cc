#include "vmm/microvm.h"

#include <pthread.h>

#include <chrono>
#include <future>

#include "vmm/builder/virtio_devices.h"
#include "vmm/common/error.h"

namespace ember::vmm {

MicroVm::MicroVm(VmResources resources, Machine machine, Logger& logger, Metrics& metrics)
    : resources_(std::move(resources)), logger_(logger), metrics_(metrics), machine_(std::move(machine)) {}

MicroVm::~MicroVm() {
  if (state() == VmState::kNotStarted) return;
  stop(0);
  wait();
}

void MicroVm::start() {
  LOG_DEBUG(logger_, "event_start: boot microvm");
  ExitLatch& exits = *machine_.exits;
  common::EventLoop& loop = *machine_.loop;
  loop.add(exits.fd(), EPOLLIN, [&exits, &loop](uint32_t) {
    exits.consume_event();
    loop.stop();
  });
  {
    std::lock_guard lock(mutex_);
    state_ = VmState::kRunning;
  }
  device_thread_ = std::thread([this] { device_thread_main(); });
  for (auto& vcpu : machine_.vcpus) vcpu->start();
  LOG_DEBUG(logger_, "event_end: boot microvm");
}

void MicroVm::device_thread_main() {
  ::pthread_setname_np(::pthread_self(), "fc_vmm");
  try {
    machine_.loop->run();
  } catch (const std::exception& e) {
    machine_.exits->request({1, std::string("device thread: ") + e.what()});
  }
  // Whatever ended the loop, the VM is over: stop and join every vCPU.
  for (auto& vcpu : machine_.vcpus) vcpu->stop();
  for (auto& vcpu : machine_.vcpus) vcpu->join();
  VmExit exit = machine_.exits->get().value_or(VmExit{1, "event loop ended unexpectedly"});
  if (exit.exit_code == 0) {
    LOG_DEBUG(logger_, "VM exited: " + exit.reason);
  } else {
    LOG_ERROR(logger_, "VM exited with code " + std::to_string(exit.exit_code) + ": " + exit.reason);
  }
  std::function<void(const VmExit&)> callback;
  {
    std::lock_guard lock(mutex_);
    exit_ = exit;
    state_ = VmState::kExited;
    callback = std::move(on_exit_);
  }
  device_thread_done_.store(true);
  exited_cv_.notify_all();
  if (callback) callback(exit);
}

VmState MicroVm::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

void MicroVm::pause() {
  std::lock_guard control(control_mutex_);
  if (state() != VmState::kRunning) return;
  for (auto& vcpu : machine_.vcpus) vcpu->pause();
  std::lock_guard lock(mutex_);
  if (state_ == VmState::kRunning) state_ = VmState::kPaused;
}

void MicroVm::resume() {
  std::lock_guard control(control_mutex_);
  if (state() != VmState::kPaused) return;
  {
    std::lock_guard lock(mutex_);
    if (state_ == VmState::kPaused) state_ = VmState::kRunning;
  }
  for (auto& vcpu : machine_.vcpus) vcpu->resume();
}

void MicroVm::send_ctrl_alt_del() {
  if (state() != VmState::kRunning) throw common::Error("SendCtrlAltDel: the microVM is not running");
  machine_.i8042->send_ctrl_alt_del();
}

void MicroVm::stop(int exit_code) { machine_.exits->request_stop(exit_code); }

VmExit MicroVm::wait() {
  {
    std::unique_lock lock(mutex_);
    if (state_ == VmState::kNotStarted) throw common::Error("wait: the microVM was never started");
    exited_cv_.wait(lock, [this] { return state_ == VmState::kExited; });
  }
  std::call_once(join_once_, [this] {
    if (device_thread_.joinable() && device_thread_.get_id() != std::this_thread::get_id()) device_thread_.join();
  });
  std::lock_guard lock(mutex_);
  return *exit_;
}

std::optional<VmExit> MicroVm::try_wait() {
  std::lock_guard lock(mutex_);
  if (state_ != VmState::kExited) return std::nullopt;
  return exit_;
}

void MicroVm::on_exit(std::function<void(const VmExit&)> callback) {
  std::optional<VmExit> already;
  {
    std::lock_guard lock(mutex_);
    if (state_ != VmState::kExited) {
      on_exit_ = std::move(callback);
      return;
    }
    already = exit_;
  }
  if (callback && already) callback(*already);
}

void MicroVm::run_on_device_thread(std::function<void()> task) {
  struct Shared {
    std::function<void()> task;
    std::atomic<bool> claimed{false};
    std::promise<void> done;
    void run() {
      try {
        task();
        done.set_value();
      } catch (...) {
        done.set_exception(std::current_exception());
      }
    }
  };
  auto shared = std::make_shared<Shared>();
  shared->task = std::move(task);
  std::future<void> done = shared->done.get_future();
  machine_.loop->post([shared] {
    if (!shared->claimed.exchange(true)) shared->run();
  });
  using namespace std::chrono_literals;
  while (done.wait_for(10ms) != std::future_status::ready) {
    if (device_thread_done_.load() && !shared->claimed.exchange(true)) {
      shared->run();
      break;
    }
  }
  done.get();
}

VirtioSlot& MicroVm::find_slot(virtio::DeviceType type, const std::string& id, const char* what) {
  for (auto& slot : machine_.virtio) {
    if (slot.type == type && slot.id == id) return slot;
  }
  throw common::Error(std::string(what) + " \"" + id + "\" does not exist");
}

void MicroVm::update_drive(const DriveUpdate& update) {
  VirtioSlot& slot = find_slot(virtio::DeviceType::kBlock, update.drive_id, "drive");
  run_on_device_thread([&] {
    virtio::VirtioDevice& device = slot.transport->device();
    auto lock = device.lock();
    update_block_device(device, update);
  });
  for (auto& d : resources_.drives) {
    if (d.drive_id != update.drive_id) continue;
    if (update.path_on_host) d.path_on_host = update.path_on_host;
    if (update.rate_limiter) d.rate_limiter = update.rate_limiter;
  }
}

void MicroVm::update_network_interface(const NetworkInterfaceUpdate& update) {
  VirtioSlot& slot = find_slot(virtio::DeviceType::kNet, update.iface_id, "network interface");
  run_on_device_thread([&] {
    virtio::VirtioDevice& device = slot.transport->device();
    auto lock = device.lock();
    update_net_device(device, update);
  });
  for (auto& n : resources_.network_interfaces) {
    if (n.iface_id != update.iface_id) continue;
    if (update.rx_rate_limiter) n.rx_rate_limiter = update.rx_rate_limiter;
    if (update.tx_rate_limiter) n.tx_rate_limiter = update.tx_rate_limiter;
  }
}

}  // namespace ember::vmm
