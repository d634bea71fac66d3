// What a process's stdio string means (reference §4, containerd's runc shim):
//
//   ""                              no stream
//   /run/containerd/fifo/x/id-stdout  a FIFO the client created (a path with no scheme;
//                                   a regular file there is appended to instead)
//   file:///var/log/ctr.log         append stdout and stderr to this file
//   binary:///usr/bin/logger?k=v&f  run this logger, stdout/stderr on its fds 3 and 4
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "vmm/common/error.h"

namespace ember::shim {

struct IoTarget {
  enum class Kind { kNone, kFifo, kFile, kBinary };
  Kind kind = Kind::kNone;
  std::string path;  // FIFO/file path or logger binary (absolute, percent-decoded)
  // binary://: the logger's arguments, each query key followed by its first
  // value when that is not empty ("?k1=v1&flag" -> k1 v1 flag).
  std::vector<std::string> args;
};

// Throws common::Error naming the URI: unsupported scheme, relative path,
// a host part ("file://host/x"), bad percent-encoding.
IoTarget parse_io_uri(const std::string& uri);

// %XX decoding; '+' stays '+' (paths, not forms).
std::string percent_decode(const std::string& text);

}  // namespace ember::shim
