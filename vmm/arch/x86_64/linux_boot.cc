#include "vmm/arch/x86_64/linux_boot.h"

#include <cstring>

#include "vmm/arch/x86_64/layout.h"
#include "vmm/arch/x86_64/memory_map.h"
#include "vmm/common/error.h"

namespace ember::vmm::arch {

BootParams build_zero_page(const GuestMemory& memory, const BootInfo& info) {
  BootParams params;
  std::memset(&params, 0, sizeof params);
  if (info.setup_header) {
    params.hdr = *info.setup_header;
  } else {
    params.hdr.kernel_alignment = kDefaultKernelAlignment;
  }
  params.hdr.type_of_loader = kLoaderTypeUndefined;
  params.hdr.boot_flag = kBootFlagMagic;
  params.hdr.header = kHdrSMagic;
  params.hdr.cmd_line_ptr = static_cast<uint32_t>(info.cmdline_addr.raw());
  params.hdr.cmdline_size = static_cast<uint32_t>(info.cmdline_size);
  if (info.initrd) {
    params.hdr.ramdisk_image = static_cast<uint32_t>(info.initrd->address.raw());
    params.hdr.ramdisk_size = static_cast<uint32_t>(info.initrd->size);
  }
  // No ACPI tables are written yet, so acpi_rsdp_addr stays 0: the guest
  // then finds the IOAPIC and CPUs through the MPTable.
  auto e820 = build_e820(memory);
  if (e820.size() > kE820MaxEntries) throw common::Error("too many e820 entries for the zero page");
  for (size_t i = 0; i < e820.size(); ++i) {
    params.e820_table[i] = BootE820Entry{e820[i].addr, e820[i].size, e820[i].type};
  }
  params.e820_entries = static_cast<uint8_t>(e820.size());
  return params;
}

void configure_linux_boot(const GuestMemory& memory, const BootInfo& info) {
  memory.write_obj(GuestAddress(kZeroPageStart), build_zero_page(memory, info));
}

}  // namespace ember::vmm::arch
