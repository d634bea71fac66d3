// The agent core's error type: a message plus the kind of failure, which the
// RPC layer turns into the ttrpc status code containerd expects (NOT_FOUND
// for unknown ids, FAILED_PRECONDITION for a wrong state, ...). Any other
// common::Error reaching the RPC layer is INTERNAL.
#pragma once

#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "vmm/common/error.h"

namespace ember::agent {

enum class ErrorKind {
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kFailedPrecondition,
  kInternal,
  kUnavailable
};

class AgentError : public common::Error {
 public:
  AgentError(ErrorKind kind, const std::string& message) : common::Error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// The outcome of an asynchronous operation: a value or the exception it failed with.
template <class T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit on purpose
  static Result failure(std::exception_ptr error) {
    Result r;
    r.error_ = std::move(error);
    return r;
  }
  static Result current_exception() { return failure(std::current_exception()); }

  bool ok() const { return !error_; }
  std::exception_ptr error() const { return error_; }
  // The value, or rethrows the error.
  T& value() {
    if (error_) std::rethrow_exception(error_);
    return *value_;
  }

 private:
  Result() = default;
  std::optional<T> value_;
  std::exception_ptr error_;
};

struct Unit {};

template <class T>
using Done = std::function<void(Result<T>)>;

}  // namespace ember::agent
