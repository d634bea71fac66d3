// The first line of a stdio stream connection to the agent, shared by the
// agent and its host-side client (proto/agent/agent.proto, "Stdio"):
//
//   EMBER-STREAM 1 <container_id> <exec_id or "-"> <stdin|stdout|stderr>\n
//
// answered by the agent with "OK\n" or "ERROR <message>\n".
#pragma once

#include <string>

namespace ember::agent {

enum class StreamKind { kStdin, kStdout, kStderr };

inline constexpr const char* kStreamMagic = "EMBER-STREAM";

struct StreamPreamble {
  std::string container_id;
  std::string exec_id;  // "" for the init process
  StreamKind kind = StreamKind::kStdout;
};

// Parses one preamble line (without the newline). Throws common::Error.
StreamPreamble parse_stream_preamble(const std::string& line);
// The line to send, with its "\n".
std::string format_stream_preamble(const StreamPreamble& preamble);
const char* stream_name(StreamKind kind);

}  // namespace ember::agent
