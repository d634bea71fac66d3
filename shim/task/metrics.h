// The agent's cgroup figures as containerd's cgroups Metrics (reference §3
// "Stats"): an Any `io.containerd.cgroups.v2.Metrics` (or `.v1.Metrics` when
// the guest runs cgroup v1), binary protobuf, bare type URL, which is what
// `ctr task metrics` and CRI's ContainerStats decode.
#pragma once

#include <google/protobuf/any.pb.h>

#include "agent/agent.pb.h"

namespace ember::shim {

google::protobuf::Any metrics_from_agent_stats(const ember::agent::v1::ContainerStatsResponse& stats);

}  // namespace ember::shim
