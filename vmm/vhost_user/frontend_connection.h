// One vhost-user frontend (QEMU) connected to a backend: the protocol state
// machine for one device (vhost-user.rst).
//
// The connection owns what the frontend handed over (memory table, kick,
// call and error eventfds, the backend channel) and turns it into the
// transport side of the VirtioDevice contract (virtio_device.h): it activates
// the device once every ring the frontend drives is started (kick fd
// received) and enabled and a memory table is set, forwards kicks to
// process_queue(), and implements Interrupt over the call eventfds and
// CONFIG_CHANGE_MSG on the backend channel.
//
// Stopping is not resetting (vhost-user.rst "Ring states"): when a ring
// stops (GET_VRING_BASE: QEMU pauses the VM or the device), is disabled, or
// is reconfigured (new memory table, address, size or base), the device's
// queues are stopped with its state kept (VirtioDevice::stop_queues) and
// restarted from the positions the frontend sends back once every ring runs
// again; a vsock device keeps its connections across a `stop`/`cont`. Only
// RESET_OWNER, RESET_DEVICE, new feature bits and the frontend going away
// reset the device.
//
// Every request is validated; a request that breaks the protocol throws
// ProtocolError out of handle_readable() and the owner drops the connection.
//
// Threading: everything runs on the backend's event loop thread. Calls into
// the device hold device.lock().
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vmm/common/event_fd.h"
#include "vmm/common/event_loop.h"
#include "vmm/common/unique_fd.h"
#include "vmm/devices/virtio/virtio_device.h"
#include "vmm/logger/logger.h"
#include "vmm/logger/metrics.h"
#include "vmm/vhost_user/memory_table.h"
#include "vmm/vhost_user/protocol.h"

namespace ember::vmm::vhost_user {

// Protocol features offered for `device` (vhost-user.rst "Protocol
// features"): MQ, REPLY_ACK, BACKEND_REQ, RESET_DEVICE, and CONFIG for
// devices with a config space.
uint64_t offered_protocol_features(const virtio::VirtioDevice& device);

// Counters of one backend, in metrics group vhost_user_<name>.
struct ConnectionCounters {
  ConnectionCounters(Metrics& metrics, const std::string& group);
  Counter &activate_fails, &cfg_fails, &connections, &disconnects, &protocol_errors, &messages,
      &activations, &config_change_msgs;
};

class FrontendConnection : private virtio::Interrupt {
 public:
  // `fn` is called (on the loop thread, from inside a loop handler) when the
  // connection failed in a loop handler of its own (a kick fd that broke)
  // and must be dropped; the owner must not destroy the connection from
  // inside that call.
  using FailureHandler = std::function<void(const std::string& reason)>;

  // `active` mirrors device_active() for other threads.
  FrontendConnection(common::UniqueFd socket, virtio::VirtioDevice& device, common::EventLoop& loop,
                     Logger& logger, ConnectionCounters& counters, std::string name,
                     FailureHandler on_failure, std::atomic<bool>& active);
  FrontendConnection(const FrontendConnection&) = delete;
  FrontendConnection& operator=(const FrontendConnection&) = delete;
  // Resets the device and unregisters every fd this connection added to the
  // loop (the socket itself is the owner's business).
  ~FrontendConnection() override;

  int socket_fd() const { return socket_.get(); }

  // Reads and handles every complete request available on the socket.
  // Returns false when the frontend hung up cleanly. Throws ProtocolError
  // (the owner logs it and drops the connection).
  bool handle_readable();

  // The device is serving the rings (not idle, not stopped).
  bool device_active() const { return active_; }

  // Tells the frontend the device's config space changed
  // (BACKEND_REQ CONFIG_CHANGE_MSG). Returns false when the frontend did not
  // negotiate CONFIG or gave no backend channel.
  bool notify_config_change();

 private:
  struct Vring {
    uint16_t num = 0;
    std::optional<VringAddr> addr;  // frontend (user) addresses
    uint16_t base = 0;              // next available index (SET/GET_VRING_BASE)
    common::UniqueFd kick;          // watched in the loop while set
    std::optional<common::EventFd> call;
    common::UniqueFd err;
    bool started = false;  // kick fd received, GET_VRING_BASE not yet
    bool enabled = false;  // SET_VRING_ENABLE
  };

  // virtio::Interrupt, handed to the device on activation.
  void signal_used_queue(uint16_t queue_index) override;
  void signal_config_change() override;

  void handle(Message& msg);
  void reply(const Message& request, std::span<const uint8_t> payload);
  void reply_u64(const Message& request, uint64_t value);

  void set_features(const Message& msg);
  void set_protocol_features(const Message& msg);
  void set_mem_table(Message& msg);
  Vring& ring_for(const Message& msg, uint32_t index);
  void set_vring_num(const Message& msg);
  void set_vring_addr(const Message& msg);
  void set_vring_base(const Message& msg);
  void get_vring_base(const Message& msg);
  void set_vring_kick(Message& msg);
  void set_vring_call(Message& msg);
  void set_vring_err(Message& msg);
  void set_vring_enable(const Message& msg);
  // GET/SET_CONFIG's header, its range checked against the config space and
  // the payload's size against the range.
  ConfigHeader config_header(const Message& msg);
  void get_config(const Message& msg);
  void set_config(const Message& msg);
  void set_backend_req_fd(Message& msg);
  void reset_rings(bool forget_everything);

  // Checks that ring `index`'s addresses lie in the memory table and returns
  // them as guest addresses; throws ProtocolError.
  virtio::QueueState queue_state_for(uint32_t index) const;
  bool ready_to_activate() const;
  // Starts or stops the device to match the ring states.
  void update_activation();
  // Activates the device, or restarts its stopped queues.
  void start_device();
  // Stops the running device's queues, keeping its state; saves each ring's
  // position in Vring::base.
  void stop_device();
  // Resets the device (running or stopped): its state is gone.
  void reset_device();
  void on_kick(uint32_t index);
  void stop_kick(Vring& ring);

  common::UniqueFd socket_;
  virtio::VirtioDevice& device_;
  common::EventLoop& loop_;
  Logger& logger_;
  ConnectionCounters& counters_;
  std::string name_;
  FailureHandler on_failure_;
  MessageReader reader_;

  const size_t ring_count_;
  const uint64_t offered_features_;
  const uint64_t offered_protocol_features_;
  std::vector<Vring> rings_;
  uint64_t acked_features_ = 0;  // device features only (bit 30 stripped)
  bool protocol_features_acked_ = false;
  uint64_t protocol_features_ = 0;
  std::unique_ptr<MemoryTable> memory_;
  common::UniqueFd backend_channel_;
  enum class DeviceState { kIdle, kRunning, kStopped };
  DeviceState device_state_ = DeviceState::kIdle;
  bool active_ = false;  // device_state_ == kRunning
  std::atomic<bool>& active_mirror_;
  bool config_change_warned_ = false;
  bool failed_ = false;
};

}  // namespace ember::vmm::vhost_user
