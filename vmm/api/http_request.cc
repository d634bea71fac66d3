#include "vmm/api/http_request.h"

#include <algorithm>
#include <cctype>

namespace ember::vmm::api {
namespace {

constexpr size_t kMaxLineLength = 8192;

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Returns the index of the first byte that is not valid UTF-8, or npos.
size_t invalid_utf8_at(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80             ? 1
                 : (c & 0xE0) == 0xC0 ? 2
                 : (c & 0xF0) == 0xE0 ? 3
                 : (c & 0xF8) == 0xF0 ? 4
                                      : 0;
    if (len == 0 || i + len > s.size()) return i;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return i;
    i += len;
  }
  return std::string_view::npos;
}

bool parse_u32(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  size_t i = 0;
  if (s[0] == '+') {
    if (s.size() == 1) return false;
    i = 1;
  }
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + static_cast<uint64_t>(s[i] - '0');
  }
  if (v > UINT32_MAX) return false;
  *out = v;
  return true;
}

}  // namespace

const char* method_name(HttpMethod method) {
  switch (method) {
    case HttpMethod::kGet:
      return "GET";
    case HttpMethod::kPut:
      return "PUT";
    case HttpMethod::kPatch:
      return "PATCH";
    case HttpMethod::kDelete:
      return "DELETE";
  }
  return "?";
}

const char* method_debug_name(HttpMethod method) {
  switch (method) {
    case HttpMethod::kGet:
      return "Get";
    case HttpMethod::kPut:
      return "Put";
    case HttpMethod::kPatch:
      return "Patch";
    case HttpMethod::kDelete:
      return "Delete";
  }
  return "?";
}

std::string_view HttpRequest::abs_path() const {
  std::string_view u(uri);
  constexpr std::string_view kScheme = "http://";
  if (u.substr(0, kScheme.size()) == kScheme) {
    std::string_view rest = u.substr(kScheme.size());
    size_t slash = rest.find('/');
    return slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  }
  return !u.empty() && u[0] == '/' ? u : std::string_view();
}

std::optional<std::string_view> HttpRequestParser::next_line(size_t limit, bool* too_long) {
  *too_long = false;
  size_t end = buffer_.find("\r\n", consumed_);
  if (end == std::string::npos) {
    if (buffered() > limit) *too_long = true;
    return std::nullopt;
  }
  if (end - consumed_ > limit) {
    *too_long = true;
    return std::nullopt;
  }
  std::string_view line(buffer_.data() + consumed_, end - consumed_);
  consumed_ = end + 2;
  return line;
}

HttpRequestParser::Result HttpRequestParser::fail(std::string message) {
  Result r;
  r.kind = Result::Kind::kError;
  r.error = std::move(message);
  // The stream position is lost: drop everything and start over should the
  // caller keep feeding.
  buffer_.clear();
  consumed_ = 0;
  reset_request();
  return r;
}

void HttpRequestParser::reset_request() {
  state_ = State::kRequestLine;
  current_ = HttpRequest{};
  content_length_ = 0;
  chunked_ = false;
  expect_continue_ = false;
  chunk_remaining_ = 0;
  body_.clear();
}

void HttpRequestParser::compact() {
  if (consumed_ > 0 && (consumed_ == buffer_.size() || consumed_ > 4096)) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
}

HttpRequestParser::Result HttpRequestParser::feed(std::string_view bytes) {
  buffer_.append(bytes);
  auto complete = [&]() {
    Result r;
    r.kind = Result::Kind::kRequest;
    current_.body = body_.empty() ? std::nullopt : std::optional<std::string>(std::move(body_));
    r.request = std::move(current_);
    reset_request();
    compact();
    return r;
  };
  auto need_more = [&]() {
    compact();
    return Result{};
  };
  auto size_error = [&](uint64_t size) {
    return "Request payload with size " + std::to_string(size) + " is larger than the limit of " +
           std::to_string(max_payload_) + " allowed by server.";
  };

  for (;;) {
    bool too_long = false;
    switch (state_) {
      case State::kRequestLine: {
        auto line = next_line(kMaxLineLength, &too_long);
        if (too_long) return fail("Invalid request.");
        if (!line) return need_more();
        // RFC 9112 §2.2: a server should ignore empty lines before a request line.
        if (line->empty()) continue;
        size_t sp1 = line->find(' ');
        size_t sp2 = sp1 == std::string_view::npos ? sp1 : line->find(' ', sp1 + 1);
        if (sp2 == std::string_view::npos) return fail("Invalid request.");
        std::string_view method = line->substr(0, sp1);
        std::string_view uri = line->substr(sp1 + 1, sp2 - sp1 - 1);
        std::string_view version = line->substr(sp2 + 1);
        if (method == "GET")
          current_.method = HttpMethod::kGet;
        else if (method == "PUT")
          current_.method = HttpMethod::kPut;
        else if (method == "PATCH")
          current_.method = HttpMethod::kPatch;
        else if (method == "DELETE")
          current_.method = HttpMethod::kDelete;
        else
          return fail("Invalid HTTP Method: Unsupported HTTP method.");
        if (uri.empty()) return fail("Invalid URI: Empty URI not allowed.");
        if (invalid_utf8_at(uri) != std::string_view::npos)
          return fail("Invalid URI: Cannot parse URI as UTF-8.");
        if (version == "HTTP/1.1")
          current_.http10 = false;
        else if (version == "HTTP/1.0")
          current_.http10 = true;
        else
          return fail("Invalid HTTP Version: Unsupported HTTP version.");
        current_.uri = std::string(uri);
        state_ = State::kHeaders;
        break;
      }
      case State::kHeaders: {
        auto line = next_line(kMaxLineLength, &too_long);
        if (too_long) return fail("Invalid header. Reason: Header line is longer than 8192 bytes.");
        if (!line) return need_more();
        if (!line->empty()) {
          if (size_t bad = invalid_utf8_at(*line); bad != std::string_view::npos)
            return fail(
                "Invalid header. Reason: Header contains invalid characters. Key: invalid utf-8 "
                "sequence from index " +
                std::to_string(bad));
          size_t colon = line->find(':');
          if (colon == std::string_view::npos)
            return fail("Invalid header. Reason: Header is incorrectly formatted. Key: " +
                        std::string(*line));
          std::string_view raw_name = line->substr(0, colon);
          std::string_view raw_value = line->substr(colon + 1);
          std::string name = lower(trim(raw_name));
          std::string_view value = trim(raw_value);
          if (name == "content-length") {
            if (!parse_u32(value, &content_length_))
              return fail("Invalid header. Reason: Invalid value. Key:" + std::string(raw_name) +
                          "; Value:" + std::string(raw_value));
          } else if (name == "transfer-encoding") {
            if (lower(value) == "chunked") chunked_ = true;
          } else if (name == "expect") {
            if (lower(value) == "100-continue") expect_continue_ = true;
          } else if (name == "accept-encoding") {
            // micro_http refuses a request that forbids the identity encoding.
            if (value.empty()) return fail("Invalid request.");
            bool mentions_identity = value.find("identity") != std::string_view::npos;
            size_t start = 0;
            while (start <= value.size()) {
              size_t comma = value.find(',', start);
              std::string_view piece =
                  value.substr(start, comma == std::string_view::npos ? comma : comma - start);
              std::string_view t = trim(piece);
              if (t == "identity;q=0" || (t == "*;q=0" && !mentions_identity))
                return fail("Invalid header. Reason: Invalid value. Key:Accept-Encoding; Value:" +
                            std::string(piece));
              if (comma == std::string_view::npos) break;
              start = comma + 1;
            }
          }
          // Other headers (Content-Type, Accept, ...) do not change how ember answers.
          break;
        }
        // End of the header block.
        if (chunked_) {
          // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length.
          state_ = State::kChunkSize;
          if (expect_continue_) {
            Result r;
            r.kind = Result::Kind::kContinue;
            return r;
          }
          break;
        }
        if (content_length_ == 0) return complete();
        if (content_length_ > max_payload_) {
          // The body's length is known: skip it and keep the connection.
          Result r;
          r.kind = Result::Kind::kError;
          r.error = size_error(content_length_);
          r.fatal = false;
          uint64_t discard = content_length_;
          reset_request();
          discard_remaining_ = discard;
          state_ = State::kDiscard;
          return r;
        }
        state_ = State::kBody;
        body_.reserve(std::min<uint64_t>(content_length_, 65536));
        if (expect_continue_) {
          Result r;
          r.kind = Result::Kind::kContinue;
          return r;
        }
        break;
      }
      case State::kBody: {
        size_t take = std::min<uint64_t>(buffered(), content_length_ - body_.size());
        body_.append(buffer_, consumed_, take);
        consumed_ += take;
        if (body_.size() == content_length_) return complete();
        return need_more();
      }
      case State::kChunkSize: {
        auto line = next_line(kMaxLineLength, &too_long);
        if (too_long) return fail("Invalid request. Reason: chunk size line is too long.");
        if (!line) return need_more();
        std::string_view size_text = trim(line->substr(0, line->find(';')));
        uint64_t size = 0;
        if (size_text.empty() || size_text.size() > 15)
          return fail("Invalid request. Reason: invalid chunk size.");
        for (char c : size_text) {
          int h = std::isxdigit(static_cast<unsigned char>(c))
                      ? (std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                                                                     : (std::tolower(c) - 'a' + 10))
                      : -1;
          if (h < 0) return fail("Invalid request. Reason: invalid chunk size.");
          size = size * 16 + static_cast<uint64_t>(h);
        }
        if (size == 0) {
          state_ = State::kTrailers;
          break;
        }
        if (body_.size() + size > max_payload_) return fail(size_error(body_.size() + size));
        chunk_remaining_ = size;
        state_ = State::kChunkData;
        break;
      }
      case State::kChunkData: {
        size_t take = std::min<uint64_t>(buffered(), chunk_remaining_);
        body_.append(buffer_, consumed_, take);
        consumed_ += take;
        chunk_remaining_ -= take;
        if (chunk_remaining_ > 0) return need_more();
        state_ = State::kChunkDataEnd;
        break;
      }
      case State::kChunkDataEnd: {
        auto line = next_line(kMaxLineLength, &too_long);
        if (!line && !too_long) return need_more();
        if (too_long || !line->empty())
          return fail("Invalid request. Reason: chunk data is not followed by CRLF.");
        state_ = State::kChunkSize;
        break;
      }
      case State::kDiscard: {
        size_t take = std::min<uint64_t>(buffered(), discard_remaining_);
        consumed_ += take;
        discard_remaining_ -= take;
        if (discard_remaining_ > 0) return need_more();
        state_ = State::kRequestLine;
        break;
      }
      case State::kTrailers: {
        auto line = next_line(kMaxLineLength, &too_long);
        if (too_long) return fail("Invalid header. Reason: Header line is longer than 8192 bytes.");
        if (!line) return need_more();
        if (line->empty()) return complete();
        break;  // trailer fields are ignored
      }
    }
  }
}

}  // namespace ember::vmm::api
