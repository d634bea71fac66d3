#include "vmm/api/request_router.h"

#include <vector>

#include "vmm/vmm_config/json.h"
#include "vmm/vmm_config/rust_format.h"

namespace ember::vmm::api {
namespace {

constexpr const char* kDeserializeError =
    "An error occurred when deserializing the json body of a request: ";

// Rust's `str::trim_start_matches('/').split_terminator('/')`.
std::vector<std::string_view> path_tokens(std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  std::vector<std::string_view> tokens;
  while (!path.empty()) {
    size_t slash = path.find('/');
    if (slash == std::string_view::npos) {
      tokens.push_back(path);
      break;
    }
    tokens.push_back(path.substr(0, slash));
    path.remove_prefix(slash + 1);
  }
  return tokens;
}

std::string not_supported(const char* feature) {
  return std::string(feature) + " is not supported by ember.";
}

}  // namespace

std::optional<std::string> check_resource_id(std::string_view id) {
  if (id.empty()) return "The ID cannot be empty.";
  for (unsigned char c : id) {
    // Upstream allows any Unicode alphanumeric; ember keeps IDs ASCII since
    // they name metrics groups and guest-visible devices.
    if (!(c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
      return "API Resource IDs can only contain alphanumeric characters and underscores.";
  }
  return std::nullopt;
}

void RequestRouter::count(const char* group, const char* name) {
  metrics_.counter(group, name).inc();
}

RoutedRequest RequestRouter::error(std::string message) {
  LOG_ERROR(logger_, message);
  RoutedRequest r;
  r.response = fault(message);
  return r;
}

RoutedRequest RequestRouter::route(const HttpRequest& request) {
  try {
    return route_unchecked(request);
  } catch (const std::exception& e) {
    // The routing code handles every malformed body itself; this is the
    // last line that keeps hostile input from taking the VMM down.
    return error(std::string("The API server could not process the request: ") + e.what());
  }
}

RoutedRequest RequestRouter::route_unchecked(const HttpRequest& request) {
  const std::string_view path = request.abs_path();
  const std::optional<std::string>& body = request.body;
  const HttpMethod method = request.method;

  // "The API server received a Put request on \"/drives/rootfs\" with body \"...\"."
  std::string description =
      std::string(method_debug_name(method)) + " request on " + rust_debug_str(path);
  if (body && path != "/mmds") {
    if (path == "/cpu-config" && !logger_.enabled(LogLevel::kDebug)) {
      description += ". To view the CPU template received by the API, configure log-level to DEBUG";
    } else {
      description += " with body ";
      description +=
          is_valid_utf8(*body) ? rust_debug_str(*body) : rust_debug_str("inconvertible to UTF-8");
    }
  }
  LOG_INFO(logger_, "The API server received a " + description + ".");

  const std::vector<std::string_view> tokens = path_tokens(path);
  const std::string_view first = tokens.empty() ? std::string_view() : tokens[0];
  const std::optional<std::string_view> second =
      tokens.size() > 1 ? std::optional<std::string_view>(tokens[1]) : std::nullopt;

  auto action = [](VmmAction a) {
    RoutedRequest r;
    r.action = std::move(a);
    return r;
  };
  // Parses a body; on failure counts `fails` and answers serde's message.
  auto parsed = [&](auto&& parse, const char* group,
                    const char* fails) -> std::optional<decltype(parse())> {
    try {
      return parse();
    } catch (const json::JsonError& e) {
      if (group) count(group, fails);
      throw;
    }
  };
  auto id_from_path = [&](const char* group,
                          const char* fails) -> std::variant<std::string, RoutedRequest> {
    if (!second) {
      count(group, fails);
      return error("The ID cannot be empty.");
    }
    if (auto problem = check_resource_id(*second)) return error(*problem);
    return std::string(*second);
  };

  try {
    switch (method) {
      case HttpMethod::kGet:
        if (body) return error("GET request cannot have a body.");
        if (first.empty()) {
          count("get_api_requests", "instance_info_count");
          return action(action::GetInstanceInfo{});
        }
        if (first == "balloon") return error(not_supported("The balloon device"));
        if (first == "version") {
          count("get_api_requests", "vmm_version_count");
          return action(action::GetVersion{});
        }
        if (first == "vm" && second == "config") return action(action::GetFullConfig{});
        if (first == "machine-config") {
          count("get_api_requests", "machine_cfg_count");
          return action(action::GetMachineConfig{});
        }
        if (first == "mmds") {
          count("get_api_requests", "mmds_count");
          return error(not_supported("MMDS"));
        }
        if (first == "hotplug" && second == "memory") {
          count("get_api_requests", "hotplug_memory_count");
          return error(not_supported("Memory hotplug"));
        }
        break;

      case HttpMethod::kPut: {
        if (!body) return error("Empty PUT request.");
        const std::string& b = *body;
        if (first == "actions") {
          count("put_api_requests", "actions_count");
          ActionType type =
              *parsed([&] { return json::parse_action(b); }, "put_api_requests", "actions_fails");
          switch (type) {
            case ActionType::kFlushMetrics:
              return action(action::FlushMetrics{});
            case ActionType::kInstanceStart:
              return action(action::StartMicroVm{});
            case ActionType::kSendCtrlAltDel:
              return action(action::SendCtrlAltDel{});
          }
        }
        if (first == "balloon") return error(not_supported("The balloon device"));
        if (first == "boot-source") {
          count("put_api_requests", "boot_source_count");
          return action(
              action::ConfigureBootSource{*parsed([&] { return json::parse_boot_source(b); },
                                                  "put_api_requests", "boot_source_fails")});
        }
        if (first == "cpu-config") {
          count("put_api_requests", "cpu_cfg_count");
          return action(action::PutCpuConfig{*parsed([&] { return json::parse_cpu_config(b); },
                                                     "put_api_requests", "cpu_cfg_fails")});
        }
        if (first == "drives") {
          count("put_api_requests", "drive_count");
          auto id = id_from_path("put_api_requests", "drive_fails");
          if (auto* r = std::get_if<RoutedRequest>(&id)) return std::move(*r);
          DriveConfig drive =
              *parsed([&] { return json::parse_drive(b); }, "put_api_requests", "drive_fails");
          if (drive.drive_id != std::get<std::string>(id)) {
            count("put_api_requests", "drive_fails");
            return error("The id from the path does not match the id from the body!");
          }
          return action(action::InsertDrive{std::move(drive)});
        }
        if (first == "pmem") {
          count("put_api_requests", "pmem_count");
          count("put_api_requests", "pmem_fails");
          return error(not_supported("The pmem device"));
        }
        if (first == "logger") {
          count("put_api_requests", "logger_count");
          return action(action::ConfigureLogger{
              *parsed([&] { return json::parse_logger(b); }, "put_api_requests", "logger_fails")});
        }
        if (first == "serial") {
          count("put_api_requests", "serial_count");
          count("put_api_requests", "serial_fails");
          return error(not_supported("Configuring the serial device (PUT /serial)"));
        }
        if (first == "machine-config") {
          count("put_api_requests", "machine_cfg_count");
          MachineConfigUpdate update = *parsed([&] { return json::parse_machine_config_put(b); },
                                               "put_api_requests", "machine_cfg_fails");
          RoutedRequest r = action(action::UpdateMachineConfig{update});
          if (update.cpu_template) {
            count("deprecated_api", "deprecated_http_api_calls");
            r.deprecation = "PUT /machine-config: cpu_template field is deprecated.";
          }
          return r;
        }
        if (first == "metrics") {
          count("put_api_requests", "metrics_count");
          return action(action::ConfigureMetrics{*parsed([&] { return json::parse_metrics(b); },
                                                         "put_api_requests", "metrics_fails")});
        }
        if (first == "mmds") {
          count("put_api_requests", "mmds_count");
          count("put_api_requests", "mmds_fails");
          return error(not_supported("MMDS"));
        }
        if (first == "network-interfaces") {
          count("put_api_requests", "network_count");
          auto id = id_from_path("put_api_requests", "network_fails");
          if (auto* r = std::get_if<RoutedRequest>(&id)) return std::move(*r);
          NetworkInterfaceConfig net = *parsed([&] { return json::parse_network_interface(b); },
                                               "put_api_requests", "network_fails");
          const std::string& path_id = std::get<std::string>(id);
          if (net.iface_id != path_id) {
            count("put_api_requests", "network_fails");
            return error("The id from the path [" + path_id +
                         "] does not match the id from the body [" + net.iface_id + "]!");
          }
          return action(action::InsertNetworkInterface{std::move(net)});
        }
        if (first == "snapshot") {
          if (!second) return error("Missing snapshot operation type.");
          if (*second == "create" || *second == "load") return error(not_supported("Snapshotting"));
          return error("Invalid request method and/or path: PUT /snapshot/" + std::string(*second) +
                       ".");
        }
        if (first == "vsock") {
          count("put_api_requests", "vsock_count");
          VsockRequest vsock =
              *parsed([&] { return json::parse_vsock(b); }, "put_api_requests", "vsock_fails");
          RoutedRequest r = action(action::SetVsock{vsock.config});
          if (vsock.deprecated_vsock_id) {
            count("deprecated_api", "deprecated_http_api_calls");
            r.deprecation = "PUT /vsock: vsock_id field is deprecated.";
          }
          return r;
        }
        if (first == "entropy")
          return action(action::SetEntropy{
              *parsed([&] { return json::parse_entropy(b); }, nullptr, nullptr)});
        if (first == "hotplug" && second == "memory") {
          count("put_api_requests", "hotplug_memory_count");
          count("put_api_requests", "hotplug_memory_fails");
          return error(not_supported("Memory hotplug"));
        }
        break;
      }

      case HttpMethod::kPatch: {
        if (first == "balloon") return error(not_supported("The balloon device"));
        if (!body) return error("Empty PATCH request.");
        const std::string& b = *body;
        if (first == "drives") {
          count("patch_api_requests", "drive_count");
          auto id = id_from_path("patch_api_requests", "drive_fails");
          if (auto* r = std::get_if<RoutedRequest>(&id)) return std::move(*r);
          DriveUpdate update = *parsed([&] { return json::parse_drive_update(b); },
                                       "patch_api_requests", "drive_fails");
          if (update.drive_id != std::get<std::string>(id)) {
            count("patch_api_requests", "drive_fails");
            return error("The id from the path does not match the id from the body!");
          }
          return action(action::UpdateDrive{std::move(update)});
        }
        if (first == "machine-config") {
          count("patch_api_requests", "machine_cfg_count");
          MachineConfigUpdate update = *parsed([&] { return json::parse_machine_config_patch(b); },
                                               "patch_api_requests", "machine_cfg_fails");
          if (update.empty()) return error("Empty PATCH request.");
          RoutedRequest r = action(action::UpdateMachineConfig{update});
          if (update.cpu_template) {
            count("deprecated_api", "deprecated_http_api_calls");
            r.deprecation = "PATCH /machine-config: cpu_template field is deprecated.";
          }
          return r;
        }
        if (first == "mmds") {
          count("patch_api_requests", "mmds_count");
          count("patch_api_requests", "mmds_fails");
          return error(not_supported("MMDS"));
        }
        if (first == "network-interfaces") {
          count("patch_api_requests", "network_count");
          auto id = id_from_path("patch_api_requests", "network_fails");
          if (auto* r = std::get_if<RoutedRequest>(&id)) return std::move(*r);
          NetworkInterfaceUpdate update =
              *parsed([&] { return json::parse_network_interface_update(b); }, "patch_api_requests",
                      "network_fails");
          const std::string& path_id = std::get<std::string>(id);
          if (update.iface_id != path_id) {
            count("patch_api_requests", "network_fails");
            return error("The id from the path [" + path_id +
                         "] does not match the id from the body [" + update.iface_id + "]!");
          }
          return action(action::UpdateNetworkInterface{std::move(update)});
        }
        if (first == "pmem") {
          count("patch_api_requests", "pmem_count");
          count("patch_api_requests", "pmem_fails");
          return error(not_supported("The pmem device"));
        }
        if (first == "vm") {
          VmStateRequest state = *parsed([&] { return json::parse_vm_state(b); }, nullptr, nullptr);
          return state == VmStateRequest::kPaused ? action(action::Pause{})
                                                  : action(action::Resume{});
        }
        if (first == "hotplug" && second == "memory") {
          count("patch_api_requests", "hotplug_memory_count");
          count("patch_api_requests", "hotplug_memory_fails");
          return error(not_supported("Memory hotplug"));
        }
        break;
      }

      case HttpMethod::kDelete:
        if (!body && (first == "drives" || first == "pmem" || first == "network-interfaces"))
          return error(not_supported("Hot-unplugging devices"));
        if (body) return error("Empty Delete request.");
        break;
    }
  } catch (const json::JsonError& e) {
    return error(std::string(kDeserializeError) + e.what() + ".");
  }
  return error(std::string("Invalid request method and/or path: ") + method_name(method) + " " +
               std::string(first) + ".");
}

HttpResponse RequestRouter::respond(const VmmResponse& outcome) {
  if (const auto* e = std::get_if<VmmResponse::Error>(&outcome.data)) {
    if (e->status == 413) {
      LOG_ERROR(logger_,
                "Received Error. Status code: 413 Payload too large. Message: " + e->message);
    } else {
      LOG_ERROR(logger_, "Received Error. Status code: 400 Bad Request. Message: " + e->message);
    }
    return fault(e->message, e->status);
  }
  if (std::holds_alternative<std::monostate>(outcome.data)) {
    LOG_INFO(logger_, "The request was executed successfully. Status code: 204 No Content.");
    return no_content();
  }
  LOG_INFO(logger_, "The request was executed successfully. Status code: 200 OK.");
  if (const auto* m = std::get_if<MachineConfig>(&outcome.data))
    return json_response(200, json::to_json(*m));
  if (const auto* i = std::get_if<InstanceInfo>(&outcome.data))
    return json_response(200, json::to_json(*i));
  if (const auto* r = std::get_if<VmResources>(&outcome.data))
    return json_response(200, json::full_config_json(*r));
  return json_response(200, json::version_json(std::get<std::string>(outcome.data)));
}

}  // namespace ember::vmm::api
