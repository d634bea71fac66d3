// Serves one ember virtio device to one vhost-user frontend (QEMU) at a time,
// on a thread of its own: the embeddable form of `ember-vmm vhost-user`.
//
//   Logger logger; Metrics metrics;
//   VhostUserBackend backend("/run/ember/blk0.sock",
//                            std::make_unique<virtio::BlockDevice>(drive, logger, metrics), logger,
//                            metrics);
//   backend.start();                       // listening; QEMU: -chardev socket,path=... -device
//   vhost-user-blk,...
//   ...
//   backend.update_block({.drive_id = "blk0", .path_on_host = "/new.img"});   // backing swap +
//   CONFIG_CHANGE backend.stop();                        // also done by the destructor
//
// The device classes are the ones ember-vmm serves over virtio-mmio; only the
// transport differs (DESIGN.md "Device models are independent of their
// transport"). See frontend_connection.h for the protocol side.
//
// Connection lifecycle: the backend listens on `socket_path` and serves one
// frontend at a time (a second one is accepted and closed at once, with a
// log line). When the frontend disconnects or breaks the protocol, the
// device is reset, everything the frontend passed is unmapped and closed,
// and the backend listens again, so a restarted or reconnecting QEMU
// (`-chardev socket,...,reconnect=N`) gets a fresh session. Only stop()
// ends the backend.
//
// Threading: start(), stop(), update_block() and the accessors may be called
// from any thread (not concurrently with the destructor). All protocol and
// device work happens on the backend's own thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "vmm/common/event_fd.h"
#include "vmm/common/event_loop.h"
#include "vmm/common/unique_fd.h"
#include "vmm/devices/virtio/virtio_device.h"
#include "vmm/logger/logger.h"
#include "vmm/logger/metrics.h"
#include "vmm/vhost_user/frontend_connection.h"
#include "vmm/vmm_config/vmm_config.h"

namespace ember::vmm::vhost_user {

class VhostUserBackend {
 public:
  // `name` labels log lines, the thread ("ember-vu-<name>") and the metrics
  // group vhost_user_<name>; empty: derived from the device type ("blk",
  // "vsock", "rng", "net").
  VhostUserBackend(std::string socket_path, std::unique_ptr<virtio::VirtioDevice> device,
                   Logger& logger, Metrics& metrics, std::string name = {});
  VhostUserBackend(const VhostUserBackend&) = delete;
  VhostUserBackend& operator=(const VhostUserBackend&) = delete;
  ~VhostUserBackend();

  // Creates the listening socket at socket_path (a stale socket file there is
  // replaced; any other file is an error) and starts the thread. Throws
  // common::Error naming the path and the reason. Call once.
  void start();
  // Serves an already connected socket instead of listening (e.g. one end of
  // a socketpair whose other end QEMU got as `-chardev socket,fd=N`). After
  // that frontend disconnects the backend idles until stop().
  void start(common::UniqueFd connected_socket);
  // Drops the connection (resetting the device), closes and unlinks the
  // listening socket, joins the thread. Idempotent.
  void stop();

  // PATCH /drives for a block device served here: posted onto the backend's
  // thread, which opens the new backing file (errors leave the drive as it
  // was and are thrown here), swaps it in and tells the frontend with
  // CONFIG_CHANGE_MSG so the guest re-reads the capacity. Blocks until done.
  // Throws common::Error when the device is not a block device, the update
  // fails, or the backend stopped.
  void update_block(const DriveUpdate& update);

  const std::string& socket_path() const { return socket_path_; }
  const std::string& name() const { return name_; }
  bool connected() const { return connected_.load(); }
  bool device_active() const { return device_active_.load(); }
  // Frontends accepted so far.
  uint64_t connection_count() const { return connection_count_.load(); }

 private:
  using Task = std::function<void(bool run)>;  // run == false: the backend stopped first

  void start_thread();
  void run();
  void on_listen_readable();
  void adopt(common::UniqueFd socket);
  void on_connection_readable(uint32_t events);
  void drop_connection(const std::string& reason, bool error);
  void drop_connection_later(const std::string& reason);
  bool post(Task task);
  void run_tasks();

  // The loop outlives the device, which may hold fds registered in it.
  common::EventLoop loop_;
  std::string socket_path_;
  std::unique_ptr<virtio::VirtioDevice> device_;
  Logger& logger_;
  Metrics& metrics_;
  std::string name_;
  ConnectionCounters counters_;

  common::UniqueFd listen_;
  bool unlink_on_stop_ = false;
  std::unique_ptr<FrontendConnection> connection_;  // loop thread only
  uint64_t connection_generation_ = 0;              // loop thread only

  std::mutex stop_mutex_;  // serialises stop()
  std::mutex mutex_;       // guards tasks_, accepting_, started_, thread_id_
  std::deque<Task> tasks_;
  common::EventFd tasks_event_;
  bool accepting_ = false;  // tasks are run by the thread
  bool started_ = false;
  std::thread thread_;
  std::thread::id thread_id_;

  std::atomic<bool> connected_{false};
  std::atomic<bool> device_active_{false};
  std::atomic<uint64_t> connection_count_{0};
};

// "blk", "vsock", "rng", "net", "balloon".
std::string device_type_name(virtio::DeviceType type);

}  // namespace ember::vmm::vhost_user
