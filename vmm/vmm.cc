// Vmm::start: build the microVM, then boot it.
#include "vmm/vmm.h"

#include "vmm/builder/builder.h"
#include "vmm/microvm.h"

namespace ember::vmm {

std::unique_ptr<Vmm> Vmm::start(const VmResources& resources, Logger& logger, Metrics& metrics) {
  Machine machine = build_microvm(resources, logger, metrics);
  auto vm = std::make_unique<MicroVm>(resources, std::move(machine), logger, metrics);
  vm->start();
  return vm;
}

}  // namespace ember::vmm
