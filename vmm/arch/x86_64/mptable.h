// Intel MultiProcessor Specification 1.4 tables at kMptableStart, so a guest
// without ACPI finds its CPUs, the IOAPIC and the ISA interrupt routing.
#pragma once

#include <cstdint>

#include "vmm/vstate/guest_memory.h"

namespace ember::vmm::arch {

#pragma pack(push, 1)
// MP spec §4.1 "MP Floating Pointer Structure".
struct MpFloatingPointer {
  char signature[4];  // "_MP_"
  uint32_t physptr;
  uint8_t length;  // in 16-byte units
  uint8_t spec_rev;
  uint8_t checksum;
  uint8_t feature[5];
};
// §4.2 "MP Configuration Table Header".
struct MpConfigHeader {
  char signature[4];  // "PCMP"
  uint16_t length;
  uint8_t spec_rev;
  uint8_t checksum;
  char oem_id[8];
  char product_id[12];
  uint32_t oem_table;
  uint16_t oem_table_size;
  uint16_t entry_count;
  uint32_t lapic_addr;
  uint16_t ext_table_length;
  uint8_t ext_table_checksum;
  uint8_t reserved;
};
// §4.3.1 "Processor Entries".
struct MpProcessorEntry {
  uint8_t type;  // 0
  uint8_t lapic_id;
  uint8_t lapic_version;
  uint8_t cpu_flags;  // bit 0 enabled, bit 1 bootstrap processor
  uint32_t cpu_signature;
  uint32_t feature_flags;
  uint32_t reserved[2];
};
// §4.3.2 "Bus Entries".
struct MpBusEntry {
  uint8_t type;  // 1
  uint8_t bus_id;
  char bus_type[6];
};
// §4.3.3 "I/O APIC Entries".
struct MpIoapicEntry {
  uint8_t type;  // 2
  uint8_t apic_id;
  uint8_t apic_version;
  uint8_t flags;  // bit 0 usable
  uint32_t apic_addr;
};
// §4.3.4 "I/O Interrupt Assignment Entries" and §4.3.5 (local, same layout).
struct MpInterruptEntry {
  uint8_t type;  // 3 I/O, 4 local
  uint8_t irq_type;  // 0 INT, 1 NMI, 2 SMI, 3 ExtINT
  uint16_t irq_flags;
  uint8_t src_bus_id;
  uint8_t src_bus_irq;
  uint8_t dst_apic_id;
  uint8_t dst_irq;  // I/O APIC pin or LINTn
};
#pragma pack(pop)
static_assert(sizeof(MpFloatingPointer) == 16);
static_assert(sizeof(MpConfigHeader) == 44);
static_assert(sizeof(MpProcessorEntry) == 20);
static_assert(sizeof(MpBusEntry) == 8);
static_assert(sizeof(MpIoapicEntry) == 8);
static_assert(sizeof(MpInterruptEntry) == 8);

inline constexpr uint8_t kMpApicVersion = 0x14;

// Size of the tables for `num_cpus` CPUs.
uint64_t mptable_size(uint32_t num_cpus);
// Writes the tables; APIC IDs are the vCPU indexes, the IOAPIC gets ID
// num_cpus + 1, ISA IRQs 0-23 map to IOAPIC pins 0-23. Throws common::Error
// if num_cpus is 0 or over 254, or the area is not guest RAM.
void setup_mptable(const GuestMemory& memory, uint32_t num_cpus);

}  // namespace ember::vmm::arch
