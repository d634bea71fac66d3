// libFuzzer target: the split virtqueue walking rings and chains that the
// fuzzer wrote straight into guest memory. Whatever the bytes, the queue must
// neither crash nor touch memory outside guest RAM (ASan checks the host
// side; GuestMemory bounds every guest access).
#include <cstring>

#include "vmm/devices/virtio/queue.h"

using namespace ember::vmm;
using namespace ember::vmm::virtio;

namespace {
// Two adjacent regions (buffers may straddle them) and a far small one.
GuestMemory make_memory() {
  GuestMemory m;
  m.add_region(GuestAddress(0), ember::common::Mapping::anonymous(0x8000, "fuzz r0"));
  m.add_region(GuestAddress(0x8000), ember::common::Mapping::anonymous(0x8000, "fuzz r1"));
  m.add_region(GuestAddress(0x40000000), ember::common::Mapping::anonymous(0x1000, "fuzz r2"));
  return m;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static GuestMemory memory = make_memory();
  if (size < 8) return 0;
  // Header: queue size exponent, feature bits, ring positions.
  QueueState state;
  state.max_size = 256;
  state.size = static_cast<uint16_t>(1u << (data[0] % 10));  // 1..512 (512 is rejected)
  state.ready = true;
  state.desc_table = GuestAddress(0);
  state.avail_ring = GuestAddress(0x1000 + (data[1] & 1));  // sometimes misaligned
  state.used_ring = GuestAddress(0x2000);
  std::memcpy(&state.next_avail, data + 2, 2);
  state.next_used = state.next_avail;
  uint64_t features = (uint64_t(1) << kFeatureVersion1);
  if (data[4] & 1) features |= uint64_t(1) << kFeatureIndirectDesc;
  if (data[4] & 2) features |= uint64_t(1) << kFeatureEventIdx;
  data += 8;
  size -= 8;
  // The rest is guest memory from 0 (rings, tables, buffers).
  std::vector<uint8_t> image(0x10000, 0);
  std::memcpy(image.data(), data, std::min(size, image.size()));
  memory.write(GuestAddress(0), image);

  std::optional<Queue> queue;
  try {
    queue.emplace(memory, state, features, "fuzz");
  } catch (const QueueError&) {
    return 0;
  }
  queue->set_error_handler([](const std::string&, bool) {});
  DescriptorChain chain;
  std::vector<uint8_t> scratch(256);
  std::vector<iovec> iov;
  for (int i = 0; i < 600 && queue->pop(chain); ++i) {
    ChainCursor reader(memory, chain.readable());
    while (reader.read(scratch) > 0) {
    }
    ChainCursor writer(memory, chain.writable());
    iov.clear();
    writer.iovecs(chain.writable_len(), iov);
    for (auto& v : iov) std::memset(v.iov_base, 0xab, v.iov_len);
    writer.skip(chain.writable_len() / 2);
    writer.write(scratch);
    if (i % 7 == 3) {
      queue->undo_pop();
      continue;
    }
    queue->add_used(chain.head(), chain.writable_len());
    if (i % 5 == 0) queue->needs_interrupt();
    if (i % 3 == 0) queue->disable_notifications();
    if (i % 4 == 0) queue->enable_notifications();
  }
  queue->needs_interrupt();
  (void)queue->state();
  return 0;
}
