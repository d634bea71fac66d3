#include "shim/hypervisor/factory.h"

#include "shim/hypervisor/ember_hypervisor.h"
#include "shim/hypervisor/qemu_hypervisor.h"
#include "vmm/common/error.h"

namespace ember::shim {

std::unique_ptr<Hypervisor> make_hypervisor(BackendKind backend, ShimLog& log) {
  switch (backend) {
    case BackendKind::kQemu: return std::make_unique<QemuHypervisor>(log);
    case BackendKind::kEmber: return std::make_unique<EmberHypervisor>(log);
    case BackendKind::kAuto: break;
  }
  throw common::Error("make_hypervisor: backend \"auto\" must be resolved first");
}

}  // namespace ember::shim
