#pragma once

#include <memory>

#include "shim/config/runtime_config.h"
#include "shim/hypervisor/hypervisor.h"

namespace ember::shim {

// The backend for `backend` (kQemu or kEmber; kAuto must be resolved first).
std::unique_ptr<Hypervisor> make_hypervisor(BackendKind backend, ShimLog& log);

}  // namespace ember::shim
