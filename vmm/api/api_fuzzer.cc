// libFuzzer target `ember_fuzzer` (fuzz preset): the API's whole untrusted
// surface. Bytes go through the HTTP request parser (in two chunks, to
// exercise incremental parsing), every parsed request through the router and
// JSON layer, every resulting action through the controller (with an
// in-memory Vmm, so InstanceStart leads on to the post-boot paths), and every
// answer is serialised. A second mode hands the bytes straight to one of the
// JSON body parsers, which the HTTP framing makes hard to reach deeply.
//
// Logger and metrics configuration actions are not executed: they would
// create files wherever the input says.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "vmm/api/controller.h"
#include "vmm/api/fake_vmm.h"
#include "vmm/api/http_request.h"
#include "vmm/api/http_response.h"
#include "vmm/api/request_router.h"
#include "vmm/vmm_config/json.h"

namespace {

using namespace ember::vmm;

struct World {
  World() {
    LoggerConfig quiet;
    quiet.level = LogLevel::kOff;
    logger.configure(quiet);
  }
  Logger logger;
  Metrics metrics;
};

void parse_body(uint8_t which, std::string_view body) {
  try {
    switch (which % 14) {
      case 0:
        json::parse_action(body);
        break;
      case 1:
        json::parse_boot_source(body);
        break;
      case 2:
        json::parse_machine_config_put(body);
        break;
      case 3:
        json::parse_machine_config_patch(body);
        break;
      case 4:
        json::parse_cpu_config(body);
        break;
      case 5:
        json::parse_drive(body);
        break;
      case 6:
        json::parse_drive_update(body);
        break;
      case 7:
        json::parse_network_interface(body);
        break;
      case 8:
        json::parse_network_interface_update(body);
        break;
      case 9:
        json::parse_vsock(body);
        break;
      case 10:
        json::parse_entropy(body);
        break;
      case 11:
        json::parse_logger(body);
        break;
      case 12:
        json::parse_metrics(body);
        break;
      default:
        json::parse_config_file(body);
        break;
    }
  } catch (const json::JsonError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World world;
  if (size < 2) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  if (data[0] & 1) {
    parse_body(data[1], input);
    return 0;
  }

  api::ControllerOptions options;
  options.start_vmm = [](const VmResources& r, Logger&, Metrics&) {
    return std::make_unique<api::testing::FakeVmm>(r);
  };
  api::Controller controller(options, world.logger, world.metrics);
  api::RequestRouter router(world.logger, world.metrics);
  api::HttpRequestParser parser(data[1] & 1 ? 64 : 51200);

  size_t split = input.empty() ? 0 : data[1] % (input.size() + 1);
  std::string_view chunks[2] = {input.substr(0, split), input.substr(split)};
  for (std::string_view chunk : chunks) {
    auto result = parser.feed(chunk);
    for (int guard = 0; guard < 10000; ++guard) {
      using Kind = api::HttpRequestParser::Result::Kind;
      if (result.kind == Kind::kNeedMore) break;
      if (result.kind == Kind::kError) {
        (void)api::parse_error_response(result.error).serialize();
        if (result.fatal) return 0;
      } else if (result.kind == Kind::kRequest) {
        api::RoutedRequest routed = router.route(result.request);
        if (routed.action &&
            !std::holds_alternative<api::action::ConfigureLogger>(*routed.action) &&
            !std::holds_alternative<api::action::ConfigureMetrics>(*routed.action)) {
          (void)router.respond(controller.handle(*routed.action)).serialize();
        } else if (routed.response) {
          (void)routed.response->serialize();
        }
      }
      result = parser.feed({});
    }
  }
  return 0;
}
