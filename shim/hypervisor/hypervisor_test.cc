// What the backends make of a VmSpec, without running a VM.
#include <gtest/gtest.h>

#include <algorithm>

#include "shim/hypervisor/ember_hypervisor.h"
#include "shim/hypervisor/qemu_hypervisor.h"
#include "vmm/vmm_config/vmm_config.h"

namespace ember::shim {
namespace {

VmSpec spec() {
  VmSpec s;
  s.name = "pod";
  s.kernel = "/g/vmlinux";
  s.initrd = "/g/initrd.cpio";
  s.kernel_args = "ember.debug=1";
  s.vcpus = 2;
  s.memory_mib = 512;
  s.drives = {{"slot0", "/img/root.ext4", false}, {"slot1", "/vm/slot1.spare", true}};
  s.vm_dir = "/run/ember/abc";
  s.accel = "tcg";
  return s;
}

std::string joined(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) out += a + " ";
  return out;
}

TEST(QemuBackend, MicrovmWithSharedMemoryVhostUserDevicesAndQmpOnPassedFds) {
  auto argv = QemuHypervisor::build_argv(spec(), 3, "/run/ember/abc/console.log");
  std::string cmd = joined(argv);
  EXPECT_EQ(argv[0], "qemu-system-x86_64");
  EXPECT_NE(cmd.find("-M microvm,acpi=off,memory-backend=mem"), std::string::npos) << cmd;
  EXPECT_NE(cmd.find("-global virtio-mmio.force-legacy=false"), std::string::npos) << cmd;
  EXPECT_NE(cmd.find("-object memory-backend-memfd,id=mem,size=512M,share=on"), std::string::npos) << cmd;
  EXPECT_NE(cmd.find("-accel tcg"), std::string::npos);
  EXPECT_EQ(cmd.find("-cpu host"), std::string::npos) << "no -cpu host under TCG";
  EXPECT_NE(cmd.find("-smp 2 -m 512M"), std::string::npos);
  EXPECT_NE(cmd.find("-kernel /g/vmlinux -initrd /g/initrd.cpio"), std::string::npos);
  EXPECT_NE(cmd.find("noapictimer ember.debug=1"), std::string::npos) << cmd;
  // Drives on fds 3 and 4 in slot order, vsock on 5, QMP on 6.
  EXPECT_NE(cmd.find("-chardev socket,id=vu-slot0,fd=3 -device vhost-user-blk,chardev=vu-slot0,num-queues=1"),
            std::string::npos) << cmd;
  EXPECT_NE(cmd.find("-chardev socket,id=vu-slot1,fd=4"), std::string::npos) << cmd;
  EXPECT_NE(cmd.find("-chardev socket,id=vu-vsock,fd=5 -device vhost-user-vsock-device,chardev=vu-vsock"),
            std::string::npos) << cmd;
  EXPECT_NE(cmd.find("-chardev socket,id=qmp,fd=6 -mon chardev=qmp,mode=control"), std::string::npos) << cmd;
  EXPECT_NE(cmd.find("-chardev file,id=console,path=/run/ember/abc/console.log"), std::string::npos) << cmd;
}

TEST(QemuBackend, KvmAddsHostCpuAndKeepsTheApicTimer) {
  VmSpec s = spec();
  s.accel = "kvm";
  std::string cmd = joined(QemuHypervisor::build_argv(s, 3, "/c.log"));
  EXPECT_NE(cmd.find("-accel kvm -cpu host"), std::string::npos) << cmd;
  EXPECT_EQ(cmd.find("noapictimer"), std::string::npos) << cmd;
}

TEST(EmberBackend, VmResourcesCarryKernelSizesDrivesVsockAndConsole) {
  vmm::VmResources r = EmberHypervisor::build_resources(spec(), "/run/ember/abc/console.log", "/run/ember/abc/vsock.sock");
  ASSERT_TRUE(r.boot_source);
  EXPECT_EQ(r.boot_source->kernel_image_path, "/g/vmlinux");
  EXPECT_EQ(r.boot_source->initrd_path.value_or(""), "/g/initrd.cpio");
  EXPECT_NE(r.boot_source->boot_args->find("console=ttyS0"), std::string::npos);
  EXPECT_NE(r.boot_source->boot_args->find("ember.debug=1"), std::string::npos);
  EXPECT_EQ(r.machine.vcpu_count, 2u);
  EXPECT_EQ(r.machine.mem_size_mib, 512u);
  ASSERT_EQ(r.drives.size(), 2u);
  EXPECT_EQ(r.drives[0].drive_id, "slot0");
  EXPECT_EQ(r.drives[0].path_on_host.value_or(""), "/img/root.ext4");
  EXPECT_FALSE(r.drives[0].is_root_device);  // the guest boots from its initramfs
  EXPECT_TRUE(r.drives[1].is_read_only);
  ASSERT_TRUE(r.vsock);
  EXPECT_EQ(r.vsock->guest_cid, 3u);
  EXPECT_EQ(r.vsock->uds_path, "/run/ember/abc/vsock.sock");
  EXPECT_EQ(r.serial_out_path.value_or(""), "/run/ember/abc/console.log");
}

}  // namespace
}  // namespace ember::shim
