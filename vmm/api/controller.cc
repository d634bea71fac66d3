#include "vmm/api/controller.h"

#include <fcntl.h>
#include <net/if.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "vmm/common/error.h"
#include "vmm/common/unique_fd.h"
#include "vmm/vmm_config/json.h"
#include "vmm/vmm_config/rust_format.h"

namespace ember::vmm::api {
namespace {

uint64_t monotonic_us() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

// Upstream opens files at configuration time and reports the io::Error.
std::optional<int> open_error(const std::string& path, int flags) {
  common::UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (!fd) return errno;
  return std::nullopt;
}

const char* state_name(VmState state) {
  switch (state) {
    case VmState::kNotStarted:
      return "Not started";
    case VmState::kPaused:
      return "Paused";
    case VmState::kRunning:
    case VmState::kExited:
      break;
  }
  return "Running";
}

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace

ConfigError::ConfigError(Area area, std::string message)
    : common::Error(message), area_(area), detail_(std::move(message)) {}

std::string ConfigError::api_message() const {
  // VmmActionError's variants (rpc_interface.rs).
  switch (area_) {
    case Area::kBootSource:
      return "Boot source error: " + detail_;
    case Area::kMachineConfig:
      return "Machine config error: " + detail_;
    case Area::kCpuConfig:
      return "Configure CPU error: " + detail_;
    case Area::kDrive:
      return "Drive config error: " + detail_;
    case Area::kNetwork:
      return "Network config error: " + detail_;
    case Area::kVsock:
      return "Vsock config error: " + detail_;
    case Area::kEntropy:
      return "Entropy config error: " + detail_;
    case Area::kLogger:
      return "Logger error: " + detail_;
    case Area::kMetrics:
      return "Metrics error: " + detail_;
  }
  return detail_;
}

std::string ConfigError::config_file_message() const {
  // ResourcesError's variants (resources.rs).
  switch (area_) {
    case Area::kBootSource:
      return "Boot source error: " + detail_;
    case Area::kMachineConfig:
      return "VM config error: " + detail_;
    case Area::kCpuConfig:
      return detail_;
    case Area::kDrive:
      return "Block device error: " + detail_;
    case Area::kNetwork:
      return "Network device error: " + detail_;
    case Area::kVsock:
      return "Vsock device error: " + detail_;
    case Area::kEntropy:
      return "Entropy device error: " + detail_;
    case Area::kLogger:
      return "Logger error: " + detail_;
    case Area::kMetrics:
      return "Metrics error: " + detail_;
  }
  return detail_;
}

Controller::Controller(ControllerOptions options, Logger& logger, Metrics& metrics)
    : options_(std::move(options)), logger_(logger), metrics_(metrics) {
  resources_.boot_timer = options_.boot_timer;
}

// ------------------------------------------------------------ validation

void Controller::set_boot_source(const BootSourceConfig& config) {
  using A = ConfigError::Area;
  if (auto err = open_error(config.kernel_image_path, O_RDONLY))
    throw ConfigError(A::kBootSource, "The kernel file cannot be opened: " + rust_io_error(*err));
  if (config.initrd_path) {
    if (auto err = open_error(*config.initrd_path, O_RDONLY))
      throw ConfigError(
          A::kBootSource,
          "The initrd file cannot be opened due to invalid path or invalid permissions. " +
              rust_io_error(*err));
  }
  if (config.boot_args) {
    // linux-loader's Cmdline: printable ASCII, shorter than the 2048-byte
    // capacity that includes the terminating NUL.
    for (unsigned char c : *config.boot_args) {
      if (c < 0x20 || c > 0x7E)
        throw ConfigError(
            A::kBootSource,
            "The kernel command line is invalid: String contains a non-printable ASCII character.");
    }
    if (config.boot_args->size() >= kMaxCmdlineLen)
      throw ConfigError(
          A::kBootSource,
          "The kernel command line is invalid: Inserting string would make command line too long.");
  }
  resources_.boot_source = config;
}

void Controller::update_machine_config(const MachineConfigUpdate& update) {
  using A = ConfigError::Area;
  MachineConfig m = resources_.machine;
  uint32_t vcpus = update.vcpu_count.value_or(m.vcpu_count);
  bool smt = update.smt.value_or(m.smt);
  if (vcpus == 0 || vcpus > kMaxVcpus || (smt && vcpus > 1 && vcpus % 2 == 1))
    throw ConfigError(A::kMachineConfig,
                      "The number of vCPUs must be greater than 0, less than 32 and must be 1 or "
                      "an even number if SMT "
                      "is enabled.");
  uint64_t mem = update.mem_size_mib.value_or(m.mem_size_mib);
  HugePages huge = update.huge_pages.value_or(m.huge_pages);
  if (mem == 0 || (huge != HugePages::kNone && mem % 2 != 0))
    throw ConfigError(
        A::kMachineConfig,
        "The memory size (MiB) is either 0, or not a multiple of the configured page size.");
  m.vcpu_count = vcpus;
  m.smt = smt;
  m.mem_size_mib = mem;
  m.huge_pages = huge;
  m.track_dirty_pages = update.track_dirty_pages.value_or(m.track_dirty_pages);
  if (update.cpu_template) {
    // Upstream keeps one template: a static one (even "None") replaces a custom one.
    m.cpu_template = *update.cpu_template;
    resources_.cpu_config.reset();
  }
  resources_.machine = m;
}

void Controller::set_cpu_config(const CustomCpuTemplate& config) {
  resources_.cpu_config = config;
  resources_.machine.cpu_template = CpuTemplate::kNone;
}

void Controller::insert_drive(const DriveConfig& config) {
  using A = ConfigError::Area;
  auto& drives = resources_.drives;
  auto position = std::find_if(drives.begin(), drives.end(),
                               [&](const DriveConfig& d) { return d.drive_id == config.drive_id; });
  bool has_root = !drives.empty() && drives.front().is_root_device;
  if (config.is_root_device && has_root && position != drives.begin())
    throw ConfigError(A::kDrive, "A root block device already exists!");
  bool virtio = config.path_on_host && !config.socket;
  bool vhost_user = config.socket && !config.path_on_host;
  if (!virtio && !vhost_user)
    throw ConfigError(A::kDrive, "Unable to create the virtio block device: Invalid block config.");
  if (virtio) {
    if (auto err = open_error(*config.path_on_host, config.is_read_only ? O_RDONLY : O_RDWR))
      throw ConfigError(
          A::kDrive,
          "Unable to create the virtio block device: Virtio backend error: Error manipulating "
          "the backing file: " +
              rust_io_error(*err) + " " + *config.path_on_host);
  }
  if (position == drives.end()) {
    if (config.is_root_device) {
      drives.insert(drives.begin(), config);
    } else {
      drives.push_back(config);
    }
    return;
  }
  // Same id: replaced in place; a new root swaps places with the first drive.
  *position = config;
  if (position != drives.begin() && config.is_root_device) std::iter_swap(drives.begin(), position);
}

void Controller::insert_network_interface(const NetworkInterfaceConfig& config) {
  using A = ConfigError::Area;
  auto& nets = resources_.network_interfaces;
  if (config.guest_mac) {
    for (const auto& n : nets) {
      if (n.guest_mac == config.guest_mac && n.iface_id != config.iface_id)
        throw ConfigError(A::kNetwork, "The MAC address is already in use: " + *config.guest_mac);
    }
  }
  if (config.host_dev_name.empty() || config.host_dev_name.size() >= IFNAMSIZ)
    throw ConfigError(
        A::kNetwork,
        "Could not create the network device: Open tap device failed: Invalid interface "
        "name: " +
            config.host_dev_name);
  auto position = std::find_if(nets.begin(), nets.end(),
                               [&](const auto& n) { return n.iface_id == config.iface_id; });
  if (position != nets.end()) {
    LOG_WARN(logger_, "Replacing existing network device '" + config.iface_id +
                          "'. The previous device configuration will be destroyed.");
    // Vec::swap_remove, as upstream: the last interface takes its place.
    *position = std::move(nets.back());
    nets.pop_back();
  }
  nets.push_back(config);
}

void Controller::set_vsock(const VsockConfig& config) {
  // Upstream binds uds_path when the PUT arrives; ember binds at
  // InstanceStart but refuses a path that is taken for the same reason.
  struct stat st;
  if (::lstat(config.uds_path.c_str(), &st) == 0)
    throw ConfigError(
        ConfigError::Area::kVsock,
        "Cannot create backend for vsock device: Error binding to the host-side Unix socket: " +
            rust_io_error(EADDRINUSE));
  resources_.vsock = config;
}

void Controller::set_entropy(const EntropyConfig& config) { resources_.entropy = config; }

void Controller::configure_logger(const LoggerUpdate& update) {
  try {
    logger_.update(update);
  } catch (const common::SystemError& e) {
    throw ConfigError(ConfigError::Area::kLogger,
                      "Failed to open target file: " + rust_io_error(e.error_code()));
  }
}

void Controller::configure_metrics(const MetricsConfig& config) {
  const std::string prefix = "Cannot initialize the metrics system due to bad user input: ";
  try {
    metrics_.configure(config);
  } catch (const common::SystemError& e) {
    throw ConfigError(ConfigError::Area::kMetrics, prefix + rust_io_error(e.error_code()));
  } catch (const common::Error& e) {
    throw ConfigError(ConfigError::Area::kMetrics, prefix + e.what());
  }
}

// ------------------------------------------------------------ lifecycle

void Controller::start_microvm() {
  if (!resources_.boot_source)
    throw common::Error("Cannot start microvm without kernel configuration.");
  resources_.boot_timer = options_.boot_timer;
  if (!options_.start_vmm) throw common::Error("this ember-vmm has no machine to start");
  std::unique_ptr<Vmm> vmm = options_.start_vmm(resources_, logger_, metrics_);
  if (!vmm) throw common::Error("the machine did not start");
  vmm_ = std::move(vmm);
  if (options_.on_started) options_.on_started(*vmm_);
}

void Controller::apply_config_file(const VmmConfigFile& file) {
  if (file.logger) configure_logger(*file.logger);
  if (file.metrics) configure_metrics(*file.metrics);
  if (file.machine_config) update_machine_config(*file.machine_config);
  if (file.cpu_config) {
    if (const auto* path = std::get_if<std::string>(&*file.cpu_config)) {
      std::ifstream in(*path);
      if (!in)
        throw ConfigError(ConfigError::Area::kCpuConfig,
                          "File operation error: " + rust_io_error(errno));
      std::stringstream text;
      text << in.rdbuf();
      try {
        set_cpu_config(json::parse_cpu_config(text.str()));
      } catch (const json::JsonError& e) {
        throw ConfigError(ConfigError::Area::kCpuConfig, std::string("Invalid JSON: ") + e.what());
      }
    } else {
      set_cpu_config(std::get<CustomCpuTemplate>(*file.cpu_config));
    }
  }
  set_boot_source(file.boot_source);
  for (const auto& drive : file.drives) insert_drive(drive);
  for (const auto& net : file.network_interfaces) insert_network_interface(net);
  if (file.vsock) set_vsock(*file.vsock);
  if (file.has_balloon) throw common::Error("The balloon device is not supported by ember.");
  if (file.has_mmds_config) throw common::Error("MMDS is not supported by ember.");
  if (file.entropy) set_entropy(*file.entropy);
  if (file.has_pmem) throw common::Error("The pmem device is not supported by ember.");
  if (file.has_memory_hotplug) throw common::Error("Memory hotplug is not supported by ember.");
}

InstanceInfo Controller::instance_info() const {
  InstanceInfo info;
  info.id = options_.instance_id;
  info.state = vmm_ ? state_name(vmm_->state()) : "Not started";
  info.vmm_version = options_.version;
  return info;
}

// ------------------------------------------------------------ dispatch

VmmResponse Controller::handle(const VmmAction& action) {
  try {
    return vmm_ ? handle_runtime(action) : handle_preboot(action);
  } catch (const ConfigError& e) {
    return VmmResponse::error(e.api_message());
  } catch (const std::exception& e) {
    return VmmResponse::error(std::string("Internal VMM error: ") + e.what());
  }
}

VmmResponse Controller::handle_preboot(const VmmAction& action) {
  auto empty = VmmResponse::empty();
  return std::visit(
      Overloaded{
          [&](const action::GetInstanceInfo&) { return VmmResponse{instance_info()}; },
          [&](const action::GetVersion&) { return VmmResponse{options_.version}; },
          [&](const action::GetMachineConfig&) { return VmmResponse{resources_.machine}; },
          [&](const action::GetFullConfig&) {
            LOG_WARN(logger_,
                     "If the VM was restored from snapshot, boot-source, machine-config.smt, and "
                     "machine-config.cpu_template will all be empty.");
            return VmmResponse{resources_};
          },
          [&](const action::StartMicroVm&) {
            try {
              start_microvm();
            } catch (const std::exception& e) {
              return VmmResponse::error(std::string("Start microvm error: ") + e.what());
            }
            return empty;
          },
          [&](const action::ConfigureBootSource& a) {
            set_boot_source(a.config);
            return empty;
          },
          [&](const action::UpdateMachineConfig& a) {
            update_machine_config(a.update);
            return empty;
          },
          [&](const action::PutCpuConfig& a) {
            set_cpu_config(a.config);
            return empty;
          },
          [&](const action::InsertDrive& a) {
            insert_drive(a.config);
            return empty;
          },
          [&](const action::InsertNetworkInterface& a) {
            insert_network_interface(a.config);
            return empty;
          },
          [&](const action::SetVsock& a) {
            set_vsock(a.config);
            return empty;
          },
          [&](const action::SetEntropy& a) {
            set_entropy(a.config);
            return empty;
          },
          [&](const action::ConfigureLogger& a) {
            configure_logger(a.update);
            return empty;
          },
          [&](const action::ConfigureMetrics& a) {
            configure_metrics(a.config);
            return empty;
          },
          [&](const auto&) { return VmmResponse::error(kNotSupportedPreBoot); },
      },
      action);
}

VmmResponse Controller::handle_runtime(const VmmAction& action) {
  auto empty = VmmResponse::empty();
  Vmm& vmm = *vmm_;
  auto timed = [&](const char* name, const char* metric, auto&& op) {
    uint64_t start = monotonic_us();
    op();
    uint64_t elapsed = monotonic_us() - start;
    metrics_.counter("latencies_us", metric).store(elapsed);
    LOG_INFO(logger_,
             std::string("'") + name + "' VMM action took " + std::to_string(elapsed) + " us.");
  };
  return std::visit(
      Overloaded{
          [&](const action::GetInstanceInfo&) { return VmmResponse{instance_info()}; },
          [&](const action::GetVersion&) { return VmmResponse{options_.version}; },
          [&](const action::GetMachineConfig&) { return VmmResponse{vmm.resources().machine}; },
          [&](const action::GetFullConfig&) { return VmmResponse{vmm.resources()}; },
          [&](const action::FlushMetrics&) {
            metrics_.flush();
            return empty;
          },
          [&](const action::SendCtrlAltDel&) {
            vmm.send_ctrl_alt_del();
            return empty;
          },
          [&](const action::Pause&) {
            timed("pause vm", "vmm_pause_vm", [&] { vmm.pause(); });
            return empty;
          },
          [&](const action::Resume&) {
            timed("resume vm", "vmm_resume_vm", [&] { vmm.resume(); });
            return empty;
          },
          [&](const action::UpdateDrive& a) {
            try {
              vmm.update_drive(a.update);
            } catch (const std::exception& e) {
              return VmmResponse::error(
                  std::string("Drive config error: Unable to patch the block device: ") + e.what() +
                  " Please verify the request arguments.");
            }
            return empty;
          },
          [&](const action::UpdateNetworkInterface& a) {
            try {
              vmm.update_network_interface(a.update);
            } catch (const std::exception& e) {
              return VmmResponse::error(
                  std::string("Network config error: Unable to update the net device: ") +
                  e.what());
            }
            return empty;
          },
          [&](const auto&) { return VmmResponse::error(kNotSupportedPostBoot); },
      },
      action);
}

}  // namespace ember::vmm::api
