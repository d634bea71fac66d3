// What the `delete` subcommand needs to clean up after a shim that died
// (reference §1.4): one JSON file per container in its bundle's `work`
// directory (persistent; the bundle itself is on tmpfs and both are removed
// by containerd after `delete`).
//
//   {"id": "web", "bundle": "...", "image": ".../ember-rootfs.ext4", "image_owned": true,
//    "vm_dir": "/run/ember/3f2a...", "vmm_pid": 4242, "vmm_start_time": 123456, "backend": "qemu"}
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace ember::shim {

struct ContainerState {
  std::string id;
  std::string bundle;
  std::string image;
  bool image_owned = false;
  std::string vm_dir;
  pid_t vmm_pid = 0;            // external VMM process (QEMU); 0 when in-process
  uint64_t vmm_start_time = 0;  // /proc/<pid>/stat starttime: tells a recycled pid apart
  std::string backend;
};

// <bundle>/work/ when containerd made one, else the bundle itself.
std::string work_dir_of(const std::string& bundle);
std::string state_file_path(const std::string& bundle);

// Atomic (write + rename); throws common::SystemError naming the file.
void write_container_state(const std::string& bundle, const ContainerState& state);
// nullopt when there is no (readable) file.
std::optional<ContainerState> read_container_state(const std::string& bundle);
void remove_container_state(const std::string& bundle);

// Field 22 of /proc/<pid>/stat; 0 when the process does not exist.
uint64_t process_start_time(pid_t pid);

}  // namespace ember::shim
