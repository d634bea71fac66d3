#include "vmm/api/api_server.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>

#include "vmm/api/http_request.h"
#include "vmm/api/http_response.h"
#include "vmm/api/request_router.h"
#include "vmm/common/error.h"

namespace ember::vmm::api {
namespace {

// A client that pipelines requests but never reads the answers stops being
// read once this much output is waiting for it.
constexpr size_t kMaxPendingOutput = 1 << 20;

uint64_t monotonic_us() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

}  // namespace

common::UniqueFd bind_api_socket(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    throw common::Error("bind API socket " + path + ": path must be shorter than SUN_LEN");
  std::memcpy(addr.sun_path, path.data(), path.size());
  common::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) common::throw_errno("create API socket");
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    common::throw_errno("bind API socket " + path);
  if (::listen(fd.get(), 128) != 0) common::throw_errno("listen on API socket " + path);
  return fd;
}

struct ApiServer::Connection {
  common::UniqueFd fd;
  HttpRequestParser parser;
  std::string out;
  size_t out_offset = 0;
  bool peer_closed = false;  // the client will send nothing more
  bool closing = false;      // close once `out` is written (unparseable input)
  bool dead = false;         // the socket failed: drop without writing
  uint32_t events = 0;       // current epoll interest

  explicit Connection(common::UniqueFd f, size_t max_payload)
      : fd(std::move(f)), parser(max_payload) {}
  size_t pending() const { return out.size() - out_offset; }
};

// One run() of the server: the epoll set, the connections and the router.
class ApiServer::Loop {
 public:
  explicit Loop(ApiServer& server) : s_(server), router_(server.logger_, server.metrics_) {}

  void run() {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) common::throw_errno("create the API server's epoll");
    watch(s_.listener_.get(), EPOLLIN);
    watch(s_.stop_.fd(), EPOLLIN);
    LOG_INFO(s_.logger_, "API server started.");
    if (s_.options_.on_started) s_.options_.on_started();

    epoll_event events[16];
    while (!stopping_) {
      int n = ::epoll_wait(epoll_.get(), events, 16, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        LOG_ERROR(s_.logger_,
                  "API Server error on retrieving incoming request: " + common::errno_text(errno));
        continue;
      }
      for (int i = 0; i < n && !stopping_; ++i) {
        int fd = events[i].data.fd;
        if (fd == s_.stop_.fd()) {
          stopping_ = true;
        } else if (fd == s_.listener_.get()) {
          accept_all();
        } else if (auto it = connections_.find(fd); it != connections_.end()) {
          serve(*it->second, events[i].events);
          settle(it->second);
        }
      }
    }
    // Like upstream's flush_outgoing_writes(): answers already produced are
    // sent if the sockets take them now.
    for (auto& [fd, c] : connections_) write_out(*c);
    connections_.clear();
  }

 private:
  void watch(int fd, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
      common::throw_errno("epoll_ctl add");
  }

  void accept_all() {
    for (;;) {
      common::UniqueFd fd(
          ::accept4(s_.listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
      if (!fd) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno != EAGAIN)
          LOG_ERROR(s_.logger_, "API server: accept failed: " + common::errno_text(errno));
        return;
      }
      if (connections_.size() >= s_.options_.max_connections) {
        // micro_http's policy: answer 503 and close the newest connection.
        (void)!::send(fd.get(), kServerFullResponse.data(), kServerFullResponse.size(),
                      MSG_NOSIGNAL | MSG_DONTWAIT);
        continue;
      }
      int raw = fd.get();
      auto c = std::make_unique<Connection>(std::move(fd), s_.options_.max_payload);
      c->events = EPOLLIN | EPOLLRDHUP;
      watch(raw, c->events);
      connections_.emplace(raw, std::move(c));
    }
  }

  void serve(Connection& c, uint32_t events) {
    if ((events & EPOLLERR) || ((events & EPOLLHUP) && !(events & EPOLLIN))) {
      c.dead = true;
      return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP)) read_in(c);
    if (!stopping_ && !c.dead) write_out(c);
    // Output drained below the limit: resume the requests already buffered.
    if (!stopping_ && !c.dead && !c.closing && c.pending() < kMaxPendingOutput &&
        c.parser.buffered() > 0) {
      process(c, {});
      write_out(c);
    }
  }

  void read_in(Connection& c) {
    char buf[16384];
    while (!c.peer_closed && !c.dead && !stopping_) {
      if (c.pending() >= kMaxPendingOutput && !c.closing) return;  // back-pressure
      ssize_t n = ::read(c.fd.get(), buf, sizeof buf);
      if (n > 0) {
        if (!c.closing) process(c, std::string_view(buf, static_cast<size_t>(n)));
      } else if (n == 0) {
        c.peer_closed = true;
      } else if (errno == EINTR) {
        continue;
      } else {
        if (errno != EAGAIN) c.dead = true;
        return;
      }
    }
  }

  void process(Connection& c, std::string_view bytes) {
    HttpRequestParser::Result r = c.parser.feed(bytes);
    for (;;) {
      switch (r.kind) {
        case HttpRequestParser::Result::Kind::kNeedMore:
          return;
        case HttpRequestParser::Result::Kind::kContinue: {
          HttpResponse cont;
          cont.status = 100;
          c.out += cont.serialize();
          break;
        }
        case HttpRequestParser::Result::Kind::kError:
          LOG_ERROR(s_.logger_, "API Server: could not parse a request: " + r.error);
          c.out += parse_error_response(r.error).serialize();
          if (r.fatal) {
            c.closing = true;
            return;
          }
          break;
        case HttpRequestParser::Result::Kind::kRequest: {
          uint64_t start = monotonic_us();
          std::optional<HttpResponse> response = handle(r.request, start);
          if (!response) return;  // shutting down
          c.out += response->serialize();
          LOG_DEBUG(s_.logger_, "Total previous API call duration: " +
                                    std::to_string(monotonic_us() - start) + " us.");
          break;
        }
      }
      if (c.pending() >= kMaxPendingOutput) return;
      r = c.parser.feed({});
    }
  }

  std::optional<HttpResponse> handle(const HttpRequest& request, uint64_t start_us) {
    RoutedRequest routed = router_.route(request);
    HttpResponse response;
    if (routed.response) {
      response = std::move(*routed.response);
    } else {
      const char* latency_name = nullptr;
      const char* latency_metric = nullptr;
      if (std::holds_alternative<action::Pause>(*routed.action)) {
        latency_name = "pause vm";
        latency_metric = "pause_vm";
      } else if (std::holds_alternative<action::Resume>(*routed.action)) {
        latency_name = "resume vm";
        latency_metric = "resume_vm";
      }
      s_.channel_.send_request(std::move(*routed.action));
      std::optional<VmmResponse> outcome = s_.channel_.wait_response(s_.stop_.fd());
      if (!outcome) {
        stopping_ = true;
        return std::nullopt;
      }
      response = router_.respond(*outcome);
      if (latency_name && outcome->ok()) {
        uint64_t elapsed = monotonic_us() - start_us;
        s_.metrics_.counter("latencies_us", latency_metric).store(elapsed);
        LOG_INFO(s_.logger_, std::string("'") + latency_name + "' API request took " +
                                 std::to_string(elapsed) + " us.");
      }
    }
    if (routed.deprecation) {
      LOG_WARN(s_.logger_, *routed.deprecation);
      response.deprecation = true;
    }
    return response;
  }

  void write_out(Connection& c) {
    while (!c.dead && c.pending() > 0) {
      ssize_t n =
          ::send(c.fd.get(), c.out.data() + c.out_offset, c.pending(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        c.out_offset += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && errno == EAGAIN) {
        return;
      } else {
        c.dead = true;
        return;
      }
    }
    if (c.pending() == 0) {
      c.out.clear();
      c.out_offset = 0;
    }
  }

  // Decides what the connection waits for next, or closes it.
  void settle(std::unique_ptr<Connection>& owner) {
    Connection& c = *owner;
    bool done = c.dead || (c.pending() == 0 && (c.closing || c.peer_closed));
    if (done) {
      if (c.closing && !c.dead) {
        // Drain what the client already sent so closing does not reset the
        // connection before it reads our answer.
        char sink[4096];
        while (::read(c.fd.get(), sink, sizeof sink) > 0) {
        }
      }
      int fd = c.fd.get();
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
      connections_.erase(fd);
      return;
    }
    uint32_t want = 0;
    if (!c.peer_closed && (c.closing || c.pending() < kMaxPendingOutput))
      want |= EPOLLIN | EPOLLRDHUP;
    if (c.pending() > 0) want |= EPOLLOUT;
    if (want != c.events) {
      epoll_event ev{};
      ev.events = want;
      ev.data.fd = c.fd.get();
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
      c.events = want;
    }
  }

  ApiServer& s_;
  RequestRouter router_;
  common::UniqueFd epoll_;
  std::map<int, std::unique_ptr<Connection>> connections_;
  bool stopping_ = false;
};

ApiServer::ApiServer(common::UniqueFd listener, ApiServerOptions options, ApiChannel& channel,
                     Logger& logger, Metrics& metrics)
    : listener_(std::move(listener)),
      options_(std::move(options)),
      channel_(channel),
      logger_(logger),
      metrics_(metrics) {}

ApiServer::~ApiServer() { stop(); }

void ApiServer::run() {
  try {
    Loop(*this).run();
  } catch (const std::exception& e) {
    LOG_ERROR(logger_, std::string("API server stopped: ") + e.what());
  }
}

void ApiServer::start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "fc_api");
    run();
  });
}

void ApiServer::stop() {
  if (!thread_.joinable()) return;
  stop_.signal();
  thread_.join();
}

}  // namespace ember::vmm::api
