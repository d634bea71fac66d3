// What ember-agent does because it is PID 1 of the guest: the initramfs has
// no init system, so the agent sets up the minimal Linux userland itself.
// Nothing here runs in host mode.
#pragma once

#include <string>

#include "guest-agent/agent/agent_log.h"

namespace ember::agent::pid1 {

// Makes fds 0-2 point at /dev/console if the kernel left them closed (no
// /dev/console in the initramfs). Call first.
void ensure_console(AgentLog& log);

// Leaves the initramfs root for a tmpfs root holding bind mounts of the
// initramfs's top-level entries. The initramfs "rootfs" mount is the top of
// the mount tree and pivot_root(2) refuses to move it (EINVAL, see
// pivot_root(2) NOTES), but crun pivots every container's root; from a
// tmpfs root it can. No file is copied.
void leave_initramfs(AgentLog& log);

// /proc, /sys, /dev (devtmpfs), /dev/pts, /dev/shm, /run, /tmp, cgroup2 on
// /sys/fs/cgroup (controllers enabled for children), /dev/fd & co. symlinks,
// hostname, loopback up, PATH, Ctrl-Alt-Del as SIGINT. Failures are logged,
// not fatal: a half-working guest can still report what went wrong.
void setup_system(AgentLog& log, const std::string& hostname);

// A kernel command line option "ember.<name>=<value>" (from /proc/cmdline).
std::string kernel_option(const std::string& name, const std::string& fallback = "");

// Syncs and reboots or powers off. PID 1 must never exit (the kernel would
// panic), so this never returns.
[[noreturn]] void end_guest(bool power_off, AgentLog& log);

}  // namespace ember::agent::pid1
