#include "shim/config/runtime_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "shim/config/toml.h"

namespace ember::shim {
namespace {

std::string error_of(const std::string& text, const std::string& path = "/etc/ember/config.toml") {
  try {
    parse_runtime_config(text, path);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Toml, ParsesTablesStringsIntegersBoolsAndArrays) {
  TomlDocument doc = parse_toml(R"(
# comment
top = "t"
[vm]
kernel = "/k"   # trailing comment
vcpus = 2
memory_mib = 1_024
debug = true
literal = 'C:\path'
escaped = "a\"b\\c\u00e9"
list = ["a", 'b', 3]
[a.b]
"quoted key" = -5
)");
  EXPECT_EQ(std::get<std::string>(doc.at("top").value), "t");
  EXPECT_EQ(std::get<std::string>(doc.at("vm.kernel").value), "/k");
  EXPECT_EQ(std::get<int64_t>(doc.at("vm.vcpus").value), 2);
  EXPECT_EQ(std::get<int64_t>(doc.at("vm.memory_mib").value), 1024);
  EXPECT_TRUE(std::get<bool>(doc.at("vm.debug").value));
  EXPECT_EQ(std::get<std::string>(doc.at("vm.literal").value), "C:\\path");
  EXPECT_EQ(std::get<std::string>(doc.at("vm.escaped").value), "a\"b\\c\xc3\xa9");
  EXPECT_EQ(std::get<TomlArray>(doc.at("vm.list").value).size(), 3u);
  EXPECT_EQ(std::get<int64_t>(doc.at("a.b.quoted key").value), -5);
  EXPECT_EQ(doc.at("vm.vcpus").line, 6);
}

TEST(Toml, RejectsWhatItDoesNotUnderstandWithTheLine) {
  auto line_of = [](const std::string& text) {
    try {
      parse_toml(text);
    } catch (const TomlError& e) {
      return e.line();
    }
    return 0;
  };
  EXPECT_EQ(line_of("a = 1\nb = 1.5\n"), 2);           // floats
  EXPECT_EQ(line_of("a = \"unterminated\n"), 1);
  EXPECT_EQ(line_of("a = 1\na = 2\n"), 2);             // duplicate key
  EXPECT_EQ(line_of("[t]\n[t]\n"), 2);                 // duplicate table
  EXPECT_EQ(line_of("x = {a = 1}\n"), 1);              // inline table
  EXPECT_EQ(line_of("[[arr]]\n"), 1);
  EXPECT_EQ(line_of("k = bare\n"), 1);                 // unquoted string
  EXPECT_EQ(line_of("k = 1 2\n"), 1);
  EXPECT_EQ(line_of("k = 99999999999999999999\n"), 1);
  EXPECT_EQ(line_of("= 1\n"), 1);
}

TEST(RuntimeConfig, DefaultsPointAtTheInstalledGuest) {
  RuntimeConfig c = default_runtime_config();
  EXPECT_EQ(c.backend, BackendKind::kAuto);
  EXPECT_EQ(c.kernel, "/usr/local/share/ember/vmlinux");
  EXPECT_EQ(c.initrd, "/usr/local/share/ember/initramfs-agent.cpio");
  EXPECT_EQ(c.vcpus, 1u);
  EXPECT_EQ(c.describe(), "config (built-in defaults)");
}

TEST(RuntimeConfig, ParsesEveryKey) {
  RuntimeConfig c = parse_runtime_config(R"(
[vm]
backend = "qemu"
kernel = "/g/vmlinux"
initrd = "/g/initrd"
kernel_args = "ember.debug=1"
vcpus = 2
memory_mib = 512
spare_drive_slots = 5
boot_timeout_ms = 30000
console_log = "/tmp/console.log"
[qemu]
binary = "/usr/bin/qemu-system-x86_64"
accel = "tcg"
[rootfs]
slack_mib = 64
[shim]
log_level = "debug"
debug_log = "/tmp/shim.log"
state_dir = "/run/ember-test"
kvm_check = "/usr/local/bin/ember-kvm-check"
)",
                                         "/x.toml");
  EXPECT_EQ(c.path, "/x.toml");
  EXPECT_EQ(c.backend, BackendKind::kQemu);
  EXPECT_EQ(c.kernel, "/g/vmlinux");
  EXPECT_EQ(c.initrd, "/g/initrd");
  EXPECT_EQ(c.kernel_args, "ember.debug=1");
  EXPECT_EQ(c.vcpus, 2u);
  EXPECT_EQ(c.memory_mib, 512u);
  EXPECT_EQ(c.spare_drive_slots, 5u);
  EXPECT_EQ(c.boot_timeout_ms, 30000u);
  EXPECT_EQ(c.console_log, "/tmp/console.log");
  EXPECT_EQ(c.qemu_binary, "/usr/bin/qemu-system-x86_64");
  EXPECT_EQ(c.accel, AccelKind::kTcg);
  EXPECT_EQ(c.rootfs_slack_mib, 64u);
  EXPECT_EQ(c.log_level, LogLevel::kDebug);
  EXPECT_EQ(c.debug_log, "/tmp/shim.log");
  EXPECT_EQ(c.state_dir, "/run/ember-test");
  EXPECT_EQ(c.kvm_check, "/usr/local/bin/ember-kvm-check");
}

TEST(RuntimeConfig, ErrorsNameFileKeyAndProblem) {
  EXPECT_EQ(error_of("[vm]\nvcpus = \"two\"\n"),
            "config /etc/ember/config.toml: vm.vcpus: expected an integer from 1 to 32, got \"two\"");
  EXPECT_EQ(error_of("[vm]\nvcpus = 64\n"),
            "config /etc/ember/config.toml: vm.vcpus: expected an integer from 1 to 32, got 64");
  EXPECT_EQ(error_of("[vm]\nbackend = \"firecracker\"\n"),
            "config /etc/ember/config.toml: vm.backend: expected \"auto\", \"qemu\" or \"ember\", got \"firecracker\"");
  EXPECT_EQ(error_of("[vm]\nkernel = \"vmlinux\"\n"),
            "config /etc/ember/config.toml: vm.kernel: expected an absolute path, got \"vmlinux\"");
  EXPECT_EQ(error_of("[vm]\nkernal = \"/k\"\n"), "config /etc/ember/config.toml: line 2: unknown key \"vm.kernal\"");
  EXPECT_EQ(error_of("[shim]\nlog_level = \"loud\"\n"),
            "config /etc/ember/config.toml: shim.log_level: unknown log level \"loud\" (expected debug, info, warn or error)");
  EXPECT_EQ(error_of("[vm\n"), "config /etc/ember/config.toml: line 1: expected ']' after table name");
}

TEST(RuntimeConfig, MissingKernelIsReportedWithFileKeyAndPath) {
  RuntimeConfig c = parse_runtime_config("[vm]\nkernel = \"/nonexistent/vmlinux\"\ninitrd = \"\"\n", "/etc/e.toml");
  try {
    check_vm_files(c);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "config /etc/e.toml: vm.kernel: /nonexistent/vmlinux: No such file or directory");
  }
}

TEST(RuntimeConfig, LoadNamesAnUnreadableFile) {
  try {
    load_runtime_config("/nonexistent/config.toml");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "config /nonexistent/config.toml: cannot read: No such file or directory");
  }
}

TEST(RuntimeConfig, ResolvePrefersOptionsThenSystemFileThenDefaults) {
  char tmpl[] = "/tmp/shim-config-test.XXXXXX";
  std::filesystem::path dir = ::mkdtemp(tmpl);
  std::string system = dir / "config.toml";
  EXPECT_EQ(resolve_config_path("", system), "");
  std::ofstream(system) << "[vm]\nvcpus = 2\n";
  EXPECT_EQ(resolve_config_path("", system), system);
  EXPECT_EQ(resolve_config_path("/from/options.toml", system), "/from/options.toml");
  EXPECT_EQ(load_runtime_config(system).vcpus, 2u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ember::shim

namespace ember::shim {
namespace {

TEST(RuntimeConfig, ShippedConfigParsesToTheDefaults) {
  // deploy/config.toml lists every key at its default value.
  RuntimeConfig shipped = load_runtime_config(std::string(EMBER_SOURCE_DIR) + "/deploy/config.toml");
  RuntimeConfig defaults = default_runtime_config();
  EXPECT_EQ(shipped.backend, defaults.backend);
  EXPECT_EQ(shipped.kernel, defaults.kernel);
  EXPECT_EQ(shipped.initrd, defaults.initrd);
  EXPECT_EQ(shipped.vcpus, defaults.vcpus);
  EXPECT_EQ(shipped.memory_mib, defaults.memory_mib);
  EXPECT_EQ(shipped.spare_drive_slots, defaults.spare_drive_slots);
  EXPECT_EQ(shipped.boot_timeout_ms, defaults.boot_timeout_ms);
  EXPECT_EQ(shipped.accel, defaults.accel);
  EXPECT_EQ(shipped.rootfs_slack_mib, defaults.rootfs_slack_mib);
  EXPECT_EQ(shipped.log_level, defaults.log_level);
  EXPECT_EQ(shipped.state_dir, defaults.state_dir);
}

}  // namespace
}  // namespace ember::shim
