#include "vmm/arch/x86_64/mptable.h"

#include <cstring>
#include <vector>

#include "vmm/arch/x86_64/layout.h"
#include "vmm/common/error.h"

namespace ember::vmm::arch {
namespace {

constexpr uint8_t kEntryProcessor = 0;
constexpr uint8_t kEntryBus = 1;
constexpr uint8_t kEntryIoapic = 2;
constexpr uint8_t kEntryIoInterrupt = 3;
constexpr uint8_t kEntryLocalInterrupt = 4;
constexpr uint8_t kIrqTypeInt = 0;
constexpr uint8_t kIrqTypeNmi = 1;
constexpr uint8_t kIrqTypeExtInt = 3;
constexpr uint8_t kCpuEnabled = 1;
constexpr uint8_t kCpuBootProcessor = 2;
// Family 6 signature and FPU + APIC feature bits, what a generic MP BIOS reports.
constexpr uint32_t kCpuSignature = 0x600;
constexpr uint32_t kCpuFeatureFpu = 0x001;
constexpr uint32_t kCpuFeatureApic = 0x200;
constexpr uint32_t kLegacyIrqs = kLastLegacyGsi + 1;

template <typename T>
void append(std::vector<uint8_t>& out, const T& value) {
  auto* p = reinterpret_cast<const uint8_t*>(&value);
  out.insert(out.end(), p, p + sizeof(T));
}

uint8_t checksum_of(const uint8_t* data, size_t len) {
  uint8_t sum = 0;
  for (size_t i = 0; i < len; ++i) sum = static_cast<uint8_t>(sum + data[i]);
  return static_cast<uint8_t>(-sum);
}

}  // namespace

uint64_t mptable_size(uint32_t num_cpus) {
  return sizeof(MpFloatingPointer) + sizeof(MpConfigHeader) + num_cpus * sizeof(MpProcessorEntry) +
         sizeof(MpBusEntry) + sizeof(MpIoapicEntry) + (kLegacyIrqs + 2) * sizeof(MpInterruptEntry);
}

void setup_mptable(const GuestMemory& memory, uint32_t num_cpus) {
  if (num_cpus == 0 || num_cpus > 254) {
    throw common::Error("MPTable: unsupported number of vCPUs " + std::to_string(num_cpus));
  }
  uint64_t size = mptable_size(num_cpus);
  if (size > kSystemMemSize || !memory.contains(GuestAddress(kMptableStart), size)) {
    throw common::Error("MPTable: " + std::to_string(size) + " bytes at " +
                        to_string(GuestAddress(kMptableStart)) + " do not fit in guest memory");
  }
  const uint8_t ioapic_id = static_cast<uint8_t>(num_cpus + 1);

  std::vector<uint8_t> entries;
  uint16_t count = 0;
  for (uint32_t cpu = 0; cpu < num_cpus; ++cpu, ++count) {
    MpProcessorEntry e{};
    e.type = kEntryProcessor;
    e.lapic_id = static_cast<uint8_t>(cpu);
    e.lapic_version = kMpApicVersion;
    e.cpu_flags = kCpuEnabled | (cpu == 0 ? kCpuBootProcessor : 0);
    e.cpu_signature = kCpuSignature;
    e.feature_flags = kCpuFeatureFpu | kCpuFeatureApic;
    append(entries, e);
  }
  MpBusEntry bus{};
  bus.type = kEntryBus;
  bus.bus_id = 0;
  std::memcpy(bus.bus_type, "ISA   ", 6);
  append(entries, bus);
  ++count;
  MpIoapicEntry ioapic{};
  ioapic.type = kEntryIoapic;
  ioapic.apic_id = ioapic_id;
  ioapic.apic_version = kMpApicVersion;
  ioapic.flags = 1;
  ioapic.apic_addr = static_cast<uint32_t>(kIoapicAddr);
  append(entries, ioapic);
  ++count;
  for (uint32_t irq = 0; irq < kLegacyIrqs; ++irq, ++count) {
    // Bus-default polarity and trigger (flags 0): edge, active high on ISA.
    MpInterruptEntry e{kEntryIoInterrupt, kIrqTypeInt, 0, 0, static_cast<uint8_t>(irq), ioapic_id,
                       static_cast<uint8_t>(irq)};
    append(entries, e);
  }
  // LINT0 of every local APIC is ExtINT (the PIC), LINT1 of all of them (0xff) is NMI.
  append(entries, MpInterruptEntry{kEntryLocalInterrupt, kIrqTypeExtInt, 0, 0, 0, 0, 0});
  append(entries, MpInterruptEntry{kEntryLocalInterrupt, kIrqTypeNmi, 0, 0, 0, 0xff, 1});
  count += 2;

  MpConfigHeader header{};
  std::memcpy(header.signature, "PCMP", 4);
  header.length = static_cast<uint16_t>(sizeof(MpConfigHeader) + entries.size());
  header.spec_rev = 4;
  std::memcpy(header.oem_id, "EMBER   ", 8);
  std::memcpy(header.product_id, "000000000000", 12);
  header.entry_count = count;
  header.lapic_addr = static_cast<uint32_t>(kLapicAddr);
  std::vector<uint8_t> table;
  append(table, header);
  table.insert(table.end(), entries.begin(), entries.end());
  table[offsetof(MpConfigHeader, checksum)] = checksum_of(table.data(), table.size());

  MpFloatingPointer mpf{};
  std::memcpy(mpf.signature, "_MP_", 4);
  mpf.physptr = static_cast<uint32_t>(kMptableStart + sizeof(MpFloatingPointer));
  mpf.length = 1;
  mpf.spec_rev = 4;
  mpf.checksum = checksum_of(reinterpret_cast<const uint8_t*>(&mpf), sizeof mpf);

  memory.write_obj(GuestAddress(kMptableStart), mpf);
  memory.write(GuestAddress(kMptableStart + sizeof(MpFloatingPointer)), table);
}

}  // namespace ember::vmm::arch
