// The ttrpc face of the agent (ember.agent.v1.Agent, proto/agent/agent.proto).
// Handlers run on the ttrpc server's handler threads: each validates and
// converts its request, hands the work to the ContainerManager on the event
// loop thread, and blocks until the loop answers (or the call is cancelled).
// Container state is touched only on the loop.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "agent/agent.ttrpc.pb.h"
#include "guest-agent/agent/agent_log.h"
#include "guest-agent/agent/container_manager.h"
#include "guest-agent/agent/event_queue.h"
#include "vmm/common/event_loop.h"

namespace ember::agent {

inline constexpr const char* kAgentVersion = "0.1.0";

class AgentService : public v1::AgentService {
 public:
  struct Hooks {
    // Called (on a handler thread) after Shutdown was accepted.
    std::function<void(bool power_off)> shutdown;
    bool pid1 = false;
  };

  AgentService(common::EventLoop& loop, ContainerManager& manager, EventQueue& events,
               AgentLog& log, Hooks hooks);

  v1::CreateContainerResponse CreateContainer(ttrpc::Context& ctx,
                                              const v1::CreateContainerRequest& req) override;
  v1::ExecProcessResponse ExecProcess(ttrpc::Context& ctx,
                                      const v1::ExecProcessRequest& req) override;
  v1::StartProcessResponse StartProcess(ttrpc::Context& ctx,
                                        const v1::StartProcessRequest& req) override;
  v1::SignalProcessResponse SignalProcess(ttrpc::Context& ctx,
                                          const v1::SignalProcessRequest& req) override;
  v1::WaitProcessResponse WaitProcess(ttrpc::Context& ctx,
                                      const v1::WaitProcessRequest& req) override;
  v1::ProcessStateResponse ProcessState(ttrpc::Context& ctx,
                                        const v1::ProcessStateRequest& req) override;
  v1::DeleteProcessResponse DeleteProcess(ttrpc::Context& ctx,
                                          const v1::DeleteProcessRequest& req) override;
  v1::ResizePtyResponse ResizePty(ttrpc::Context& ctx, const v1::ResizePtyRequest& req) override;
  v1::CloseStdinResponse CloseStdin(ttrpc::Context& ctx, const v1::CloseStdinRequest& req) override;
  v1::UpdateContainerResponse UpdateContainer(ttrpc::Context& ctx,
                                              const v1::UpdateContainerRequest& req) override;
  v1::ContainerStatsResponse ContainerStats(ttrpc::Context& ctx,
                                            const v1::ContainerStatsRequest& req) override;
  v1::ListProcessesResponse ListProcesses(ttrpc::Context& ctx,
                                          const v1::ListProcessesRequest& req) override;
  v1::WaitEventResponse WaitEvent(ttrpc::Context& ctx, const v1::WaitEventRequest& req) override;
  v1::PingResponse Ping(ttrpc::Context& ctx, const v1::PingRequest& req) override;
  v1::GuestInfoResponse GuestInfo(ttrpc::Context& ctx, const v1::GuestInfoRequest& req) override;
  v1::BlockDeviceChangedResponse BlockDeviceChanged(
      ttrpc::Context& ctx, const v1::BlockDeviceChangedRequest& req) override;
  v1::ShutdownResponse Shutdown(ttrpc::Context& ctx, const v1::ShutdownRequest& req) override;
  v1::ReadLogResponse ReadLog(ttrpc::Context& ctx, const v1::ReadLogRequest& req) override;

 private:
  // Runs `op` on the loop and waits for its Done; translates errors into
  // ttrpc statuses.
  template <class T>
  T on_loop(ttrpc::Context& ctx, std::function<void(Done<T>)> op);
  uint64_t uptime_ms() const;

  common::EventLoop& loop_;
  ContainerManager& manager_;
  EventQueue& events_;
  AgentLog& log_;
  Hooks hooks_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

// The ttrpc status for an exception from the core.
ttrpc::StatusError to_status_error(std::exception_ptr error);

}  // namespace ember::agent
