#include "proto/ttrpc/server.h"

#include <pthread.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proto/ttrpc/asio_socket.h"
#include "proto/ttrpc/frame.h"
#include "proto/ttrpc/handler_pool.h"
#include "proto/ttrpc/socket.h"
#include "ttrpc/request.pb.h"
#include "vmm/common/error.h"

namespace ember::ttrpc {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kIdleThreadTimeout = std::chrono::seconds(30);
// How long shutdown() waits for queued replies to drain before it closes.
constexpr auto kFlushTimeout = std::chrono::seconds(1);
// Retry delay after accept() failed for lack of fds or memory.
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);
// Deadlines further out than this are treated as none (keeps time_point
// arithmetic far from overflow).
constexpr std::int64_t kMaxTimeoutNanos = std::int64_t{10} * 365 * 24 * 3600 * 1'000'000'000;
constexpr std::size_t kReadBufferSize = 64 * 1024;

class ServerConnection;
class Listener;

struct ServerCall {
  ServerCall(std::uint32_t id, std::string service, std::string method, Metadata metadata,
             std::optional<Clock::time_point> deadline, std::shared_ptr<const Handler> handler,
             std::string payload)
      : id(id),
        handler(std::move(handler)),
        payload(std::move(payload)),
        ctx(std::move(service), std::move(method), std::move(metadata), deadline) {}

  const std::uint32_t id;
  const std::shared_ptr<const Handler> handler;
  const std::string payload;
  Context ctx;
  std::unique_ptr<asio::steady_timer> timer;  // IO thread only
};

}  // namespace

struct Server::Impl {
  explicit Impl(ServerOptions opts);

  void log(const std::string& line) const {
    if (options.log) options.log(line);
  }
  // Handler for service/method, or nullptr with `error` set to the
  // UNIMPLEMENTED status Go's ttrpc sends.
  std::shared_ptr<const Handler> find(const std::string& service, const std::string& method,
                                      Status& error) const;
  // IO thread.
  void add_connection(common::UniqueFd fd, bool accepted);
  void remove_connection(const std::shared_ptr<ServerConnection>& conn);
  // Runs `fn` on the IO thread and waits for it.
  void run_on_io(std::function<void()> fn);

  ServerOptions options;
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work;
  HandlerPool pool;

  mutable std::shared_mutex registry_mu;
  std::map<std::string, std::map<std::string, std::shared_ptr<const Handler>, std::less<>>,
           std::less<>>
      registry;

  // IO thread only.
  std::vector<std::shared_ptr<Listener>> listeners;
  std::set<std::shared_ptr<ServerConnection>> connections;
  bool shutting_down = false;
  std::unique_ptr<asio::steady_timer> force_close_timer;

  std::atomic<std::size_t> connection_count{0};
  std::mutex shutdown_mu;
  bool shutdown_done = false;
  std::thread io_thread;
};

namespace {

// One accepted or handed-over connection. Lives on the IO thread; handler
// threads only hold a reference and post their results back.
class ServerConnection : public std::enable_shared_from_this<ServerConnection> {
 public:
  ServerConnection(Server::Impl& server, common::UniqueFd fd)
      : server_(server), stream_(adopt_stream_socket(server.io, std::move(fd))) {}

  void start() { read_more(); }

  // Shutdown, step 1: cancel running calls; later requests get UNAVAILABLE.
  void begin_shutdown() {
    draining_ = true;
    for (auto& [id, call] : calls_) call->ctx.cancel();
  }

  // Shutdown, step 2: answer whatever is still running.
  void abort_pending(const Status& status) {
    auto calls = std::exchange(calls_, {});
    for (auto& [id, call] : calls) {
      if (call->timer) call->timer->cancel();
      call->ctx.cancel();
      answer(id, status);
    }
  }

  void close_when_flushed() {
    if (closed_) return;
    close_after_flush_ = true;
    if (!writing_) close("");
  }

  void close(const std::string& reason) {
    if (closed_) return;
    closed_ = true;
    if (!reason.empty()) server_.log("ttrpc server: closing connection: " + reason);
    boost::system::error_code ignored;
    stream_.close(ignored);
    auto calls = std::exchange(calls_, {});
    for (auto& [id, call] : calls) {
      if (call->timer) call->timer->cancel();
      call->ctx.cancel();
    }
    server_.remove_connection(shared_from_this());
  }

 private:
  void read_more() {
    stream_.async_read_some(asio::buffer(read_buf_),
                            [self = shared_from_this()](const boost::system::error_code& ec,
                                                        std::size_t n) { self->on_read(ec, n); });
  }

  void on_read(const boost::system::error_code& ec, std::size_t n) {
    if (closed_) return;
    if (ec) {
      if (ec == asio::error::eof) {
        close(reader_.mid_frame() ? "peer closed the connection in the middle of a frame" : "");
      } else {
        close("read: " + ec.message());
      }
      return;
    }
    reader_.feed(std::span<const std::uint8_t>(read_buf_.data(), n));
    while (auto frame = reader_.next()) {
      on_frame(std::move(*frame));
      if (closed_) return;
    }
    read_more();
  }

  void on_frame(FrameReader::Frame frame) {
    const std::uint32_t id = frame.header.stream_id;
    if (frame.oversize) {
      // Like Go's ttrpc: the bytes are gone, answer on that stream id.
      answer(id,
             Status{Code::kResourceExhausted,
                    "ttrpc: message length " + std::to_string(frame.header.length) +
                        " exceeds the maximum message size of " + std::to_string(kMaxFrameLength)});
      return;
    }
    // Response, Data (streams) and unknown types are ignored for forward
    // compatibility (reference §2).
    if (frame.header.type != static_cast<std::uint8_t>(FrameType::kRequest)) return;

    ::ttrpc::Request request;
    if (!request.ParseFromString(frame.payload)) {
      answer(id, Status{Code::kInvalidArgument,
                        "ttrpc: cannot decode the request on stream " + std::to_string(id)});
      return;
    }
    if (id % 2 == 0) {
      answer(id, Status{Code::kInvalidArgument,
                        "ttrpc: stream id " + std::to_string(id) +
                            " is even; client-initiated stream ids must be odd"});
      return;
    }
    if (calls_.contains(id)) {
      answer(id, Status{Code::kInvalidArgument,
                        "ttrpc: stream id " + std::to_string(id) + " is already in use"});
      return;
    }
    if (draining_) {
      answer(id, Status{Code::kUnavailable, "ttrpc: server shutting down"});
      return;
    }
    Status error;
    auto handler = server_.find(request.service(), request.method(), error);
    if (!handler) {
      answer(id, error);
      return;
    }

    Metadata metadata;
    for (const auto& kv : request.metadata()) metadata.add(kv.key(), kv.value());
    const auto now = Clock::now();
    std::optional<Clock::time_point> deadline;
    const std::int64_t timeout = request.timeout_nano();
    if (timeout != 0 && timeout <= kMaxTimeoutNanos) {
      deadline = now + std::chrono::nanoseconds(std::max<std::int64_t>(timeout, 0));
    }
    auto call = std::make_shared<ServerCall>(id, request.service(), request.method(),
                                             std::move(metadata), deadline, std::move(handler),
                                             std::move(*request.mutable_payload()));
    if (deadline && *deadline <= now) {
      answer(id, deadline_status(*call));
      return;
    }
    calls_.emplace(id, call);
    if (deadline) {
      call->timer = std::make_unique<asio::steady_timer>(server_.io, *deadline);
      call->timer->async_wait([weak = weak_from_this(), call](const boost::system::error_code& ec) {
        if (ec) return;
        if (auto self = weak.lock()) self->expire(call);
      });
    }
    server_.pool.submit([self = shared_from_this(), call] { self->run_handler(call); });
  }

  static Status deadline_status(const ServerCall& call) {
    return Status{Code::kDeadlineExceeded,
                  "ttrpc: " + call.ctx.service() + "/" + call.ctx.method() + ": deadline exceeded"};
  }

  // Handler thread.
  void run_handler(const std::shared_ptr<ServerCall>& call) {
    Status status;
    std::string reply;
    if (call->ctx.cancelled()) {
      status = Status{Code::kCancelled, "ttrpc: call cancelled before it started"};
    } else {
      try {
        reply = (*call->handler)(call->ctx, call->payload);
      } catch (const StatusError& e) {
        status = e.status();
      } catch (const std::exception& e) {
        status = Status{Code::kUnknown, e.what()};
      } catch (...) {
        status = Status{Code::kUnknown, "ttrpc: handler threw a non-standard exception"};
      }
    }
    call->ctx.finish();
    if (!status.ok()) reply.clear();
    asio::post(server_.io, [self = shared_from_this(), call, status = std::move(status),
                            reply = std::move(reply)]() mutable {
      self->complete(call, std::move(status), std::move(reply));
    });
  }

  void complete(const std::shared_ptr<ServerCall>& call, Status status, std::string reply) {
    auto it = calls_.find(call->id);
    // Already answered (deadline, shutdown) or the connection is gone.
    if (closed_ || it == calls_.end() || it->second != call) return;
    calls_.erase(it);
    if (call->timer) call->timer->cancel();
    answer(call->id, status, std::move(reply));
  }

  void expire(const std::shared_ptr<ServerCall>& call) {
    auto it = calls_.find(call->id);
    if (closed_ || it == calls_.end() || it->second != call) return;
    calls_.erase(it);
    // The reply must always be sent, even if the handler never returns.
    answer(call->id, deadline_status(*call));
    call->ctx.cancel();
  }

  void answer(std::uint32_t id, const Status& status, std::string payload = {}) {
    ::ttrpc::Response response;
    // Go's server always sets status (code 0 on success); do the same.
    auto* st = response.mutable_status();
    st->set_code(static_cast<std::int32_t>(status.code));
    st->set_message(status.message);
    if (status.ok()) response.set_payload(std::move(payload));
    std::string bytes = response.SerializeAsString();
    if (bytes.size() > kMaxFrameLength) {
      const std::size_t size = bytes.size();
      response.Clear();
      response.mutable_status()->set_code(static_cast<std::int32_t>(Code::kResourceExhausted));
      response.mutable_status()->set_message("ttrpc: reply of " + std::to_string(size) +
                                             " bytes exceeds the maximum message size of " +
                                             std::to_string(kMaxFrameLength));
      bytes = response.SerializeAsString();
    }
    write(encode_frame(id, FrameType::kResponse, bytes));
  }

  void write(std::string frame) {
    if (closed_) return;
    write_queue_.push_back(std::move(frame));
    if (!writing_) write_next();
  }

  void write_next() {
    if (write_queue_.empty()) {
      writing_ = false;
      if (close_after_flush_) close("");
      return;
    }
    writing_ = true;
    asio::async_write(stream_, asio::buffer(write_queue_.front()),
                      [self = shared_from_this()](const boost::system::error_code& ec,
                                                  std::size_t) { self->on_written(ec); });
  }

  void on_written(const boost::system::error_code& ec) {
    if (closed_) return;
    if (ec) {
      close("write: " + ec.message());
      return;
    }
    write_queue_.pop_front();
    write_next();
  }

  Server::Impl& server_;
  asio::generic::stream_protocol::socket stream_;
  std::array<std::uint8_t, kReadBufferSize> read_buf_;
  FrameReader reader_;
  std::deque<std::string> write_queue_;
  bool writing_ = false;
  bool draining_ = false;
  bool close_after_flush_ = false;
  bool closed_ = false;
  std::unordered_map<std::uint32_t, std::shared_ptr<ServerCall>> calls_;
};

// Accept loop on a listening socket of any family.
class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(Server::Impl& server, common::UniqueFd fd)
      : server_(server), stream_(server.io), retry_(server.io) {
    stream_.assign(fd.release());
    stream_.non_blocking(true);
  }

  void start() { wait(); }

  void close() {
    boost::system::error_code ignored;
    stream_.close(ignored);
    retry_.cancel();
  }

 private:
  void wait() {
    stream_.async_wait(asio::posix::stream_descriptor::wait_read,
                       [self = shared_from_this()](const boost::system::error_code& ec) {
                         if (!ec) self->accept_ready();
                       });
  }

  void accept_ready() {
    for (;;) {
      int fd = ::accept4(stream_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        server_.add_connection(common::UniqueFd(fd), true);
        continue;
      }
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        server_.log("ttrpc server: accept: " + common::errno_text(err) + "; retrying");
        retry_.expires_after(kAcceptRetryDelay);
        retry_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
          if (!ec) self->wait();
        });
        return;
      }
      server_.log("ttrpc server: accept: " + common::errno_text(err) + "; listener stopped");
      return;
    }
    wait();
  }

  Server::Impl& server_;
  asio::posix::stream_descriptor stream_;
  asio::steady_timer retry_;
};

}  // namespace

Server::Impl::Impl(ServerOptions opts)
    : options(std::move(opts)),
      work(asio::make_work_guard(io)),
      pool(options.max_handler_threads,
           std::chrono::duration_cast<std::chrono::milliseconds>(kIdleThreadTimeout),
           "ttrpc-handler") {
  io_thread = std::thread([this] {
    pthread_setname_np(pthread_self(), "ttrpc-server");
    for (;;) {
      try {
        io.run();
        return;
      } catch (const std::exception& e) {
        log(std::string("ttrpc server: unexpected error on the IO thread: ") + e.what());
      }
    }
  });
}

std::shared_ptr<const Handler> Server::Impl::find(const std::string& service,
                                                  const std::string& method, Status& error) const {
  std::shared_lock lock(registry_mu);
  auto s = registry.find(service);
  if (s == registry.end()) {
    error = Status{Code::kUnimplemented, "service " + service};
    return nullptr;
  }
  auto m = s->second.find(method);
  if (m == s->second.end()) {
    error = Status{Code::kUnimplemented, "method " + method};
    return nullptr;
  }
  return m->second;
}

void Server::Impl::add_connection(common::UniqueFd fd, bool accepted) {
  if (shutting_down) return;
  if (accepted && options.require_same_uid && is_unix_socket(fd.get())) {
    auto cred = peer_credentials(fd.get());
    if (!cred || cred->uid != ::geteuid()) {
      log("ttrpc server: rejected connection from " +
          (cred ? "uid " + std::to_string(cred->uid) + " pid " + std::to_string(cred->pid)
                : std::string("a peer without credentials")) +
          ": only uid " + std::to_string(::geteuid()) + " may connect");
      return;
    }
  }
  std::shared_ptr<ServerConnection> conn;
  try {
    conn = std::make_shared<ServerConnection>(*this, std::move(fd));
  } catch (const std::exception& e) {
    log(std::string("ttrpc server: cannot serve connection: ") + e.what());
    return;
  }
  connections.insert(conn);
  ++connection_count;
  conn->start();
}

void Server::Impl::remove_connection(const std::shared_ptr<ServerConnection>& conn) {
  if (connections.erase(conn) > 0) --connection_count;
  if (shutting_down && connections.empty() && force_close_timer) force_close_timer->cancel();
}

void Server::Impl::run_on_io(std::function<void()> fn) {
  std::promise<void> done;
  asio::post(io, [&] {
    fn();
    done.set_value();
  });
  done.get_future().wait();
}

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Server::~Server() { shutdown(); }

void Server::register_service(Service& service) {
  register_service(service, std::string(service.service_name()));
}

void Server::register_service(Service& service, std::string name) {
  for (auto& method : service.methods()) {
    register_method(name, std::move(method.name), std::move(method.handler));
  }
}

void Server::register_method(std::string service, std::string method, Handler handler) {
  std::unique_lock lock(impl_->registry_mu);
  auto& methods = impl_->registry[service];
  if (methods.contains(method)) {
    throw common::Error("ttrpc: register " + service + "/" + method + ": already registered");
  }
  methods.emplace(std::move(method), std::make_shared<const Handler>(std::move(handler)));
}

void Server::listen_unix(const std::string& path) { serve_listener(ttrpc::listen_unix(path)); }

void Server::serve_listener(common::UniqueFd listening_fd) {
  auto listener = std::make_shared<Listener>(*impl_, std::move(listening_fd));
  asio::post(impl_->io, [impl = impl_.get(), listener] {
    if (impl->shutting_down) {
      listener->close();
      return;
    }
    impl->listeners.push_back(listener);
    listener->start();
  });
}

void Server::serve_connection(common::UniqueFd connected_fd) {
  auto fd = std::make_shared<common::UniqueFd>(std::move(connected_fd));
  asio::post(impl_->io, [impl = impl_.get(), fd] { impl->add_connection(std::move(*fd), false); });
}

void Server::shutdown() {
  Impl& s = *impl_;
  if (s.pool.on_pool_thread() || std::this_thread::get_id() == s.io_thread.get_id()) {
    throw std::logic_error(
        "ttrpc::Server::shutdown() called from a handler or IO thread would wait for "
        "itself; signal another thread instead");
  }
  std::lock_guard lock(s.shutdown_mu);
  if (s.shutdown_done) return;
  s.shutdown_done = true;

  s.run_on_io([&s] {
    s.shutting_down = true;
    for (auto& listener : s.listeners) listener->close();
    s.listeners.clear();
    for (auto& conn : s.connections) conn->begin_shutdown();
  });
  s.pool.wait_idle_until(Clock::now() + s.options.shutdown_grace);
  s.run_on_io([&s] {
    auto connections = s.connections;  // close() edits the set
    for (auto& conn : connections) {
      conn->abort_pending(Status{Code::kUnavailable, "ttrpc: server shutting down"});
      conn->close_when_flushed();
    }
    if (s.connections.empty()) return;
    s.force_close_timer = std::make_unique<asio::steady_timer>(s.io, kFlushTimeout);
    s.force_close_timer->async_wait([&s](const boost::system::error_code& ec) {
      if (ec) return;
      auto rest = s.connections;
      for (auto& conn : rest) conn->close("replies not flushed in time at shutdown");
    });
  });
  // Handlers that ignore cancellation are waited for here; their results
  // are dropped (the connections are closing).
  s.pool.join();
  s.work.reset();
  s.io_thread.join();
}

std::size_t Server::connection_count() const { return impl_->connection_count.load(); }

}  // namespace ember::ttrpc
