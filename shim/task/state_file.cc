#include "shim/task/state_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "vmm/common/error.h"

namespace ember::shim {

std::string work_dir_of(const std::string& bundle) {
  struct stat st {};
  std::string work = bundle + "/work";
  if (::stat(work.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return work;
  return bundle;
}

std::string state_file_path(const std::string& bundle) { return work_dir_of(bundle) + "/ember-state.json"; }

void write_container_state(const std::string& bundle, const ContainerState& s) {
  nlohmann::json j = {{"id", s.id},           {"bundle", s.bundle},   {"image", s.image},
                      {"image_owned", s.image_owned}, {"vm_dir", s.vm_dir}, {"vmm_pid", s.vmm_pid},
                      {"vmm_start_time", s.vmm_start_time}, {"backend", s.backend}};
  std::string path = state_file_path(bundle);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) common::throw_errno("write " + tmp);
    out << j.dump() << "\n";
    if (!out) common::throw_errno("write " + tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) < 0) common::throw_errno("rename " + tmp);
}

std::optional<ContainerState> read_container_state(const std::string& bundle) {
  std::ifstream in(state_file_path(bundle));
  if (!in) return std::nullopt;
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    ContainerState s;
    s.id = j.value("id", "");
    s.bundle = j.value("bundle", "");
    s.image = j.value("image", "");
    s.image_owned = j.value("image_owned", false);
    s.vm_dir = j.value("vm_dir", "");
    s.vmm_pid = j.value("vmm_pid", 0);
    s.vmm_start_time = j.value("vmm_start_time", uint64_t{0});
    s.backend = j.value("backend", "");
    return s;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

void remove_container_state(const std::string& bundle) { ::unlink(state_file_path(bundle).c_str()); }

uint64_t process_start_time(pid_t pid) {
  if (pid <= 0) return 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(in, text)) return 0;
  // The command name (field 2) may contain spaces and parentheses: count
  // fields after the last ')'.
  auto close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  // rest starts at field 3 (state); starttime is field 22.
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return 0;
  }
  try {
    return std::stoull(field);
  } catch (...) {
    return 0;
  }
}

}  // namespace ember::shim
