#include "proto/ttrpc/client.h"

#include <pthread.h>

#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <deque>
#include <future>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "proto/ttrpc/asio_socket.h"
#include "proto/ttrpc/frame.h"
#include "ttrpc/request.pb.h"

namespace ember::ttrpc {
namespace asio = boost::asio;

namespace {
constexpr std::size_t kReadBufferSize = 64 * 1024;
}  // namespace

// Everything below except `closed` is touched only on the IO thread. Async
// operations capture `this`: the Impl outlives the IO thread (joined in
// ~Client), and run() returns only when no operation is pending.
struct Client::Impl {
  struct Pending {
    std::string what;  // "service/method", for error messages
    Callback done;
    std::unique_ptr<asio::steady_timer> timer;
  };

  Impl(common::UniqueFd fd, ClientOptions opts)
      : options(std::move(opts)),
        work(asio::make_work_guard(io)),
        stream(adopt_stream_socket(io, std::move(fd))) {}

  void start() {
    read_more();
    io_thread = std::thread([this] {
      pthread_setname_np(pthread_self(), "ttrpc-client");
      io.run();
    });
  }

  bool on_io_thread() const { return std::this_thread::get_id() == io_thread.get_id(); }

  static void invoke(Callback& done, Status status, std::string payload) {
    // A callback that throws is a bug in the caller; keep the IO thread alive.
    try {
      done(std::move(status), std::move(payload));
    } catch (...) {
    }
  }

  void send(std::string what, std::string request, std::chrono::nanoseconds timeout,
            Callback done) {
    if (shut_down) {
      invoke(done, close_status, {});
      return;
    }
    if (request.size() > kMaxFrameLength) {
      invoke(done,
             Status{Code::kResourceExhausted, "ttrpc: request of " + what + " is " +
                                                  std::to_string(request.size()) +
                                                  " bytes, more than the maximum message size of " +
                                                  std::to_string(kMaxFrameLength)},
             {});
      return;
    }
    // Odd ids 1, 3, 5, ...; after 2^32 the counter wraps to 1 again and
    // skips ids still in use.
    while (pending.contains(next_id)) next_id += 2;
    const std::uint32_t id = next_id;
    next_id += 2;
    Pending p{std::move(what), std::move(done), nullptr};
    if (timeout.count() > 0) {
      p.timer = std::make_unique<asio::steady_timer>(io, timeout);
      p.timer->async_wait([this, id, timeout](const boost::system::error_code& ec) {
        if (!ec) expire(id, timeout);
      });
    }
    pending.emplace(id, std::move(p));
    write(encode_frame(id, FrameType::kRequest, request));
  }

  void expire(std::uint32_t id, std::chrono::nanoseconds timeout) {
    auto it = pending.find(id);
    if (it == pending.end()) return;
    Pending p = std::move(it->second);
    pending.erase(it);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
    invoke(p.done,
           Status{Code::kDeadlineExceeded,
                  "ttrpc: " + p.what + ": no reply within " + std::to_string(ms) + " ms"},
           {});
  }

  void read_more() {
    stream.async_read_some(asio::buffer(read_buf), [this](const boost::system::error_code& ec,
                                                          std::size_t n) { on_read(ec, n); });
  }

  void on_read(const boost::system::error_code& ec, std::size_t n) {
    if (shut_down) return;
    if (ec) {
      std::string why = ec == asio::error::eof ? "peer closed the connection" : ec.message();
      if (ec == asio::error::eof && reader.mid_frame()) why += " in the middle of a frame";
      shut(Status{Code::kUnavailable, "ttrpc: connection closed: " + why});
      return;
    }
    reader.feed(std::span<const std::uint8_t>(read_buf.data(), n));
    while (auto frame = reader.next()) {
      on_frame(std::move(*frame));
      if (shut_down) return;
    }
    read_more();
  }

  void on_frame(FrameReader::Frame frame) {
    // Requests from the server (streams) and unknown types are not ours.
    if (frame.header.type != static_cast<std::uint8_t>(FrameType::kResponse)) return;
    const std::uint32_t id = frame.header.stream_id;
    auto it = pending.find(id);
    if (it == pending.end()) return;  // late reply to a call that timed out
    Pending p = std::move(it->second);
    pending.erase(it);
    if (p.timer) p.timer->cancel();
    if (frame.oversize) {
      invoke(p.done,
             Status{Code::kResourceExhausted, "ttrpc: reply of " + p.what + " is " +
                                                  std::to_string(frame.header.length) +
                                                  " bytes, more than the maximum message size of " +
                                                  std::to_string(kMaxFrameLength)},
             {});
      return;
    }
    ::ttrpc::Response response;
    if (!response.ParseFromString(frame.payload)) {
      invoke(p.done,
             Status{Code::kInternal, "ttrpc: cannot decode the response of " + p.what +
                                         " on stream " + std::to_string(id)},
             {});
      return;
    }
    if (response.has_status() && response.status().code() != 0) {
      invoke(p.done,
             Status{static_cast<Code>(response.status().code()), response.status().message()}, {});
      return;
    }
    invoke(p.done, Status{}, std::move(*response.mutable_payload()));
  }

  void write(std::string frame) {
    write_queue.push_back(std::move(frame));
    if (!writing) write_next();
  }

  void write_next() {
    if (write_queue.empty()) {
      writing = false;
      return;
    }
    writing = true;
    asio::async_write(
        stream, asio::buffer(write_queue.front()),
        [this](const boost::system::error_code& ec, std::size_t) {
          if (shut_down) return;
          if (ec) {
            shut(Status{Code::kUnavailable, "ttrpc: connection closed: write: " + ec.message()});
            return;
          }
          write_queue.pop_front();
          write_next();
        });
  }

  void shut(Status why) {
    if (shut_down) return;
    shut_down = true;
    closed.store(true);
    close_status = why;
    boost::system::error_code ignored;
    stream.close(ignored);
    auto calls = std::exchange(pending, {});
    for (auto& [id, p] : calls) {
      if (p.timer) p.timer->cancel();
      invoke(p.done, why, {});
    }
    if (options.on_close) {
      try {
        options.on_close(why);
      } catch (...) {
      }
    }
  }

  ClientOptions options;
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work;
  asio::generic::stream_protocol::socket stream;
  std::array<std::uint8_t, kReadBufferSize> read_buf;
  FrameReader reader;
  std::deque<std::string> write_queue;
  bool writing = false;
  std::unordered_map<std::uint32_t, Pending> pending;
  std::uint32_t next_id = 1;
  bool shut_down = false;
  Status close_status;
  std::atomic<bool> closed{false};
  std::thread io_thread;
};

Client::Client(common::UniqueFd connected_fd, ClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(connected_fd), std::move(options))) {
  impl_->start();
}

Client::~Client() {
  close();
  impl_->work.reset();
  impl_->io_thread.join();
}

std::string Client::call(std::string_view service, std::string_view method, std::string payload,
                         const CallOptions& options) {
  if (impl_->on_io_thread()) {
    throw std::logic_error(
        "ttrpc::Client::call() on the client's IO thread would deadlock; use call_async()");
  }
  std::promise<std::pair<Status, std::string>> result;
  call_async(service, method, std::move(payload), options,
             [&result](Status status, std::string reply) {
               result.set_value({std::move(status), std::move(reply)});
             });
  auto [status, reply] = result.get_future().get();
  if (!status.ok()) throw StatusError(std::move(status));
  return std::move(reply);
}

void Client::call_async(std::string_view service, std::string_view method, std::string payload,
                        const CallOptions& options, Callback done) {
  ::ttrpc::Request request;
  request.set_service(std::string(service));
  request.set_method(std::string(method));
  request.set_payload(std::move(payload));
  if (options.timeout.count() > 0) request.set_timeout_nano(options.timeout.count());
  for (const auto& [key, value] : options.metadata.entries()) {
    auto* kv = request.add_metadata();
    kv->set_key(key);
    kv->set_value(value);
  }
  std::string what = std::string(service) + "/" + std::string(method);
  asio::post(impl_->io,
             [impl = impl_.get(), what = std::move(what), bytes = request.SerializeAsString(),
              timeout = options.timeout, done = std::move(done)]() mutable {
               impl->send(std::move(what), std::move(bytes), timeout, std::move(done));
             });
}

void Client::close() {
  impl_->closed.store(true);
  Status why{Code::kCancelled, "ttrpc: client closed"};
  if (impl_->on_io_thread()) {
    impl_->shut(std::move(why));
    return;
  }
  asio::post(impl_->io, [impl = impl_.get(), why = std::move(why)] { impl->shut(why); });
}

bool Client::closed() const { return impl_->closed.load(); }

}  // namespace ember::ttrpc
