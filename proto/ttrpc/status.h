// Status codes and the one exception type of the ttrpc layer.
//
// ttrpc carries gRPC status codes in google.rpc.Status (reference §2);
// containerd maps them back to its errdefs (NOT_FOUND, ALREADY_EXISTS, ...),
// so the numbers below are wire values and must not change.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "vmm/common/error.h"

namespace ember::ttrpc {

enum class Code : std::int32_t {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// "NOT_FOUND"; "CODE(99)" for values outside the gRPC set.
std::string code_name(Code code);

struct Status {
  Code code = Code::kOk;
  std::string message;

  bool ok() const { return code == Code::kOk; }
  // "NOT_FOUND: container x not found", or "OK".
  std::string to_string() const;

  friend bool operator==(const Status&, const Status&) = default;
};

// Handlers throw it to answer with a status; client calls throw it when the
// call fails. what() is status().to_string().
class StatusError : public common::Error {
 public:
  explicit StatusError(Status status);
  StatusError(Code code, std::string message);

  const Status& status() const { return status_; }
  Code code() const { return status_.code; }

 private:
  Status status_;
};

}  // namespace ember::ttrpc
