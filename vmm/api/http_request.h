// HTTP/1.1 requests as Firecracker's API server (micro_http) accepts them,
// parsed incrementally from a byte stream so that keep-alive and pipelined
// requests work (reference/firecracker-compat.md §1.1).
//
// Differences from micro_http, all in the client's favour: `Transfer-Encoding:
// chunked` bodies are decoded (micro_http silently misreads them), and a
// request line or header line may be up to 8 KiB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

namespace ember::vmm::api {

enum class HttpMethod { kGet, kPut, kPatch, kDelete };

// "GET", "PUT", ...
const char* method_name(HttpMethod method);
// Rust's Debug of micro_http's Method: "Get", "Put", ...
const char* method_debug_name(HttpMethod method);

struct HttpRequest {
  HttpMethod method = HttpMethod::kGet;
  std::string uri;
  bool http10 = false;
  // None when there was no body (Content-Length absent or 0).
  std::optional<std::string> body;

  // The path part of the URI the way micro_http's get_abs_path() reads it:
  // "http://host/x" -> "/x"; a URI not starting with '/' -> "".
  std::string_view abs_path() const;
};

class HttpRequestParser {
 public:
  static constexpr size_t kDefaultMaxPayload = 51200;

  explicit HttpRequestParser(size_t max_payload = kDefaultMaxPayload) : max_payload_(max_payload) {}

  struct Result {
    enum class Kind {
      kNeedMore,  // everything fed so far is consumed; nothing complete yet
      kRequest,   // `request` is complete
      kContinue,  // the client asked for `Expect: 100-continue`: send 100, keep feeding
      kError,     // `error` is micro_http's text; the stream cannot be resynchronised
    } kind = Kind::kNeedMore;
    HttpRequest request;
    std::string error;
    // For kError: the stream cannot be resynchronised; close after replying.
    // False for an oversized body of known length, which the parser skips.
    bool fatal = true;
  };

  // Feeds bytes (appended to what is buffered) and returns the next event.
  // Call again with an empty view to get further events from buffered bytes.
  Result feed(std::string_view bytes);

  // Bytes buffered but not consumed by a complete request.
  size_t buffered() const { return buffer_.size() - consumed_; }
  // Whether a request has started but is not complete.
  bool mid_request() const { return state_ != State::kRequestLine || buffered() > 0; }

 private:
  enum class State {
    kRequestLine,
    kHeaders,
    kBody,
    kChunkSize,
    kChunkData,
    kChunkDataEnd,
    kTrailers,
    kDiscard
  };

  std::optional<std::string_view> next_line(size_t limit, bool* too_long);
  Result fail(std::string message);
  void reset_request();
  void compact();

  size_t max_payload_;
  std::string buffer_;
  size_t consumed_ = 0;
  State state_ = State::kRequestLine;
  HttpRequest current_;
  uint64_t content_length_ = 0;
  bool chunked_ = false;
  bool expect_continue_ = false;
  uint64_t chunk_remaining_ = 0;
  uint64_t discard_remaining_ = 0;
  std::string body_;
};

}  // namespace ember::vmm::api
