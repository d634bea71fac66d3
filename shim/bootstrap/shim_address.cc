#include "shim/bootstrap/shim_address.h"

#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "vmm/common/error.h"
#include "vmm/common/unique_fd.h"

namespace ember::shim {

std::string group_id(const nlohmann::json& spec, const std::string& id) {
  auto annotations = spec.find("annotations");
  if (annotations == spec.end() || !annotations->is_object()) return id;
  for (const char* key : {kGroupAnnotation, kCriSandboxIdAnnotation, kCrioSandboxIdAnnotation}) {
    auto it = annotations->find(key);
    if (it != annotations->end() && it->is_string() && !it->get<std::string>().empty()) {
      return it->get<std::string>();
    }
  }
  return id;
}

std::string sha256_hex(const std::string& data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  ::SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  std::string out;
  char buf[3];
  for (unsigned char b : digest) {
    std::snprintf(buf, sizeof buf, "%02x", b);
    out += buf;
  }
  return out;
}

std::string socket_path(const std::string& containerd_address, const std::string& ns, const std::string& group,
                        const std::string& dir) {
  return dir + "/" + sha256_hex(containerd_address + "/" + ns + "/" + group);
}

std::string format_address(const std::string& path) { return "unix://" + path; }

std::string parse_address(const std::string& address) {
  const std::string scheme = "unix://";
  if (address.rfind(scheme, 0) == 0) return address.substr(scheme.size());
  if (!address.empty() && address[0] == '/') return address;
  return "";
}

void write_address_file(const std::string& bundle, const std::string& address) {
  std::string tmp = bundle + "/.address";
  std::string final_path = bundle + "/address";
  {
    common::UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) common::throw_errno("write " + tmp);
    size_t done = 0;
    while (done < address.size()) {
      ssize_t n = ::write(fd.get(), address.data() + done, address.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        common::throw_errno("write " + tmp);
      }
      done += static_cast<size_t>(n);
    }
  }
  if (::rename(tmp.c_str(), final_path.c_str()) < 0) common::throw_errno("rename " + tmp + " to " + final_path);
}

std::string read_address_file(const std::string& bundle) {
  std::ifstream in(bundle + "/address");
  if (!in) return "";
  std::stringstream buf;
  buf << in.rdbuf();
  std::string s = buf.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool socket_accepts(const std::string& path) {
  if (path.empty()) return false;
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) return false;
  common::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } while (rc < 0 && errno == EINTR);
  return rc == 0;
}

}  // namespace ember::shim
