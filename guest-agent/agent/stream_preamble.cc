#include "guest-agent/agent/stream_preamble.h"

#include <sstream>
#include <vector>

#include "vmm/common/error.h"

namespace ember::agent {

const char* stream_name(StreamKind kind) {
  switch (kind) {
    case StreamKind::kStdin:
      return "stdin";
    case StreamKind::kStdout:
      return "stdout";
    case StreamKind::kStderr:
      return "stderr";
  }
  return "?";
}

StreamPreamble parse_stream_preamble(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  if (words.size() != 5 || words[0] != kStreamMagic) {
    throw common::Error("bad stream preamble \"" + line + "\": expected \"" + kStreamMagic +
                        " 1 <container> <exec|-> <stdin|stdout|stderr>\"");
  }
  if (words[1] != "1") throw common::Error("unsupported stream protocol version " + words[1]);
  StreamPreamble p;
  p.container_id = words[2];
  p.exec_id = words[3] == "-" ? "" : words[3];
  if (words[4] == "stdin") {
    p.kind = StreamKind::kStdin;
  } else if (words[4] == "stdout") {
    p.kind = StreamKind::kStdout;
  } else if (words[4] == "stderr") {
    p.kind = StreamKind::kStderr;
  } else {
    throw common::Error("unknown stream \"" + words[4] + "\" (stdin, stdout or stderr)");
  }
  return p;
}

std::string format_stream_preamble(const StreamPreamble& p) {
  return std::string(kStreamMagic) + " 1 " + p.container_id + " " +
         (p.exec_id.empty() ? "-" : p.exec_id) + " " + stream_name(p.kind) + "\n";
}

}  // namespace ember::agent
