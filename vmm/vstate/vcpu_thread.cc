#include "vmm/vstate/vcpu_thread.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "vmm/common/error.h"

namespace ember::vmm {
namespace {

void kick_handler(int) {}

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
  return buf;
}

const char* internal_suberror_name(uint32_t suberror) {
  switch (suberror) {
    case KVM_INTERNAL_ERROR_EMULATION:
      return "emulation failure";
    case KVM_INTERNAL_ERROR_SIMUL_EX:
      return "simultaneous exceptions";
    case KVM_INTERNAL_ERROR_DELIVERY_EV:
      return "event delivery failure";
    case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
      return "unexpected exit reason";
    default:
      return "unknown suberror";
  }
}

}  // namespace

void install_vcpu_kick_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = kick_handler;
    sigemptyset(&sa.sa_mask);
    // No SA_RESTART: KVM_RUN must return EINTR.
    if (::sigaction(SIGRTMIN, &sa, nullptr) < 0) common::throw_errno("install SIGRTMIN handler");
  });
}

VcpuThread::VcpuThread(std::unique_ptr<Vcpu> vcpu, const Bus& pio, const Bus& mmio, ExitLatch& exits,
                       Logger& logger, Metrics& metrics)
    : vcpu_(std::move(vcpu)),
      pio_(pio),
      mmio_(mmio),
      exits_(exits),
      logger_(logger),
      exit_io_in_(metrics.counter("vcpu", "exit_io_in")),
      exit_io_out_(metrics.counter("vcpu", "exit_io_out")),
      exit_mmio_read_(metrics.counter("vcpu", "exit_mmio_read")),
      exit_mmio_write_(metrics.counter("vcpu", "exit_mmio_write")),
      failures_(metrics.counter("vcpu", "failures")) {}

VcpuThread::~VcpuThread() {
  stop();
  join();
}

void VcpuThread::start() {
  install_vcpu_kick_handler();
  std::lock_guard lock(mutex_);
  thread_ = std::thread([this] { main_loop(); });
  started_ = true;
}

void VcpuThread::kick() {
  vcpu_->set_immediate_exit(true);
  // Under the lock: join() marks the thread as going away first, so the
  // signal never targets a thread that was joined (its id may be reused).
  std::lock_guard lock(mutex_);
  if (started_ && !joining_) ::pthread_kill(thread_.native_handle(), SIGRTMIN);
}

void VcpuThread::pause() {
  std::unique_lock lock(mutex_);
  if (!started_ || finished_ || command_ == Command::kStop) return;
  command_ = Command::kPause;
  lock.unlock();
  kick();
  lock.lock();
  cv_.wait(lock, [this] { return parked_ || finished_; });
}

void VcpuThread::resume() {
  std::lock_guard lock(mutex_);
  if (command_ == Command::kPause) command_ = Command::kRun;
  cv_.notify_all();
}

void VcpuThread::stop() {
  {
    std::lock_guard lock(mutex_);
    command_ = Command::kStop;
    cv_.notify_all();
  }
  kick();
}

void VcpuThread::join() {
  {
    std::lock_guard lock(mutex_);
    if (!started_ || joining_) return;
    joining_ = true;
  }
  thread_.join();
}

void VcpuThread::main_loop() {
  char name[16];
  std::snprintf(name, sizeof name, "fc_vcpu %u", vcpu_->index());
  ::pthread_setname_np(::pthread_self(), name);
  // The kick must reach this thread even if the creator blocked SIGRTMIN.
  sigset_t kick_set;
  sigemptyset(&kick_set);
  sigaddset(&kick_set, SIGRTMIN);
  ::pthread_sigmask(SIG_UNBLOCK, &kick_set, nullptr);

  const std::string who = "vcpu " + std::to_string(vcpu_->index());
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      while (command_ == Command::kPause) {
        if (!parked_) {
          parked_ = true;
          vcpu_->kvmclock_ctrl();
          cv_.notify_all();
        }
        cv_.wait(lock);
      }
      parked_ = false;
      if (command_ == Command::kStop) break;
    }
    int r = vcpu_->run();
    if (r == -EINTR || r == -EAGAIN) {
      vcpu_->set_immediate_exit(false);
      continue;
    }
    std::optional<VmExit> end;
    if (r < 0) {
      end = VmExit{1, who + ": KVM_RUN failed: " + common::errno_text(-r)};
    } else {
      try {
        end = handle_exit();
      } catch (const std::exception& e) {
        end = VmExit{1, who + ": " + e.what()};
      }
    }
    if (end) {
      if (end->exit_code != 0) {
        failures_.inc();
        LOG_ERROR(logger_, end->reason);
      } else {
        LOG_INFO(logger_, end->reason);
      }
      exits_.request(std::move(*end));
      break;
    }
  }
  std::lock_guard lock(mutex_);
  finished_ = true;
  cv_.notify_all();
}

std::optional<VmExit> VcpuThread::handle_exit() {
  kvm_run& run = *vcpu_->run_state();
  const std::string who = "vcpu " + std::to_string(vcpu_->index());
  switch (run.exit_reason) {
    case KVM_EXIT_IO: {
      auto* base = reinterpret_cast<uint8_t*>(&run) + run.io.data_offset;
      for (uint32_t i = 0; i < run.io.count; ++i) {
        std::span<uint8_t> data(base + i * run.io.size, run.io.size);
        if (run.io.direction == KVM_EXIT_IO_IN) {
          exit_io_in_.inc();
          // An unclaimed port reads as all ones, like an empty ISA bus.
          if (!pio_.read(run.io.port, data)) std::memset(data.data(), 0xff, data.size());
        } else {
          exit_io_out_.inc();
          pio_.write(run.io.port, data);
        }
      }
      return std::nullopt;
    }
    case KVM_EXIT_MMIO: {
      std::span<uint8_t> data(run.mmio.data, std::min<uint32_t>(run.mmio.len, sizeof run.mmio.data));
      if (run.mmio.is_write) {
        exit_mmio_write_.inc();
        mmio_.write(run.mmio.phys_addr, data);
      } else {
        exit_mmio_read_.inc();
        if (!mmio_.read(run.mmio.phys_addr, data)) std::memset(data.data(), 0xff, data.size());
      }
      return std::nullopt;
    }
    case KVM_EXIT_INTR:
      return std::nullopt;
    case KVM_EXIT_SYSTEM_EVENT:
      switch (run.system_event.type) {
        case KVM_SYSTEM_EVENT_RESET:
          return VmExit{0, who + ": guest reset (KVM_EXIT_SYSTEM_EVENT)"};
        case KVM_SYSTEM_EVENT_SHUTDOWN:
          return VmExit{0, who + ": guest shutdown (KVM_EXIT_SYSTEM_EVENT)"};
        default:
          return VmExit{1, who + ": KVM_EXIT_SYSTEM_EVENT type " + std::to_string(run.system_event.type)};
      }
    case KVM_EXIT_SHUTDOWN:
      return VmExit{1, who + ": KVM_EXIT_SHUTDOWN (triple fault) at rip " + hex(vcpu_->get_regs().rip)};
    case KVM_EXIT_FAIL_ENTRY:
      return VmExit{1, who + ": KVM_EXIT_FAIL_ENTRY, hardware entry failure reason " +
                           hex(run.fail_entry.hardware_entry_failure_reason)};
    case KVM_EXIT_INTERNAL_ERROR:
      return handle_internal_error(run);
    case KVM_EXIT_HLT:
      return VmExit{1, who + ": unexpected KVM_EXIT_HLT (the in-kernel irqchip handles HLT)"};
    default:
      return VmExit{1, who + ": unexpected KVM exit reason " + std::to_string(run.exit_reason)};
  }
}

std::optional<VmExit> VcpuThread::handle_internal_error(const kvm_run& run) {
  std::string reason = "vcpu " + std::to_string(vcpu_->index()) + ": KVM_EXIT_INTERNAL_ERROR, suberror " +
                       std::to_string(run.internal.suberror) + " (" +
                       internal_suberror_name(run.internal.suberror) + ")";
  uint32_t ndata = std::min<uint32_t>(run.internal.ndata, 16);
  if (ndata > 0) {
    reason += ", data";
    for (uint32_t i = 0; i < ndata; ++i) reason += " " + hex(run.internal.data[i]);
  }
  try {
    reason += ", rip " + hex(vcpu_->get_regs().rip);
  } catch (const common::Error&) {
  }
  return VmExit{1, reason};
}

}  // namespace ember::vmm
