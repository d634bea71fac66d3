#include "vmm/common/event_loop.h"

#include <gtest/gtest.h>

#include <thread>

namespace ember::common {
namespace {

TEST(EventLoop, DispatchesReadyFdAndPostedTasks) {
  EventLoop loop;
  EventFd kick;
  int kicks = 0;
  loop.add(kick.fd(), EPOLLIN, [&](uint32_t) {
    kicks += static_cast<int>(kick.consume());
    loop.post([&] { loop.stop(); });
  });
  std::thread other([&] { kick.signal(3); });
  loop.run();
  other.join();
  EXPECT_EQ(kicks, 3);
}

TEST(EventLoop, HandlerMayRemoveItself) {
  EventLoop loop;
  EventFd a;
  int calls = 0;
  loop.add(a.fd(), EPOLLIN, [&](uint32_t) {
    ++calls;
    loop.remove(a.fd());
  });
  a.signal();
  loop.run_once(100);
  a.signal();
  loop.run_once(10);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(loop.watches(a.fd()));
}

}  // namespace
}  // namespace ember::common
