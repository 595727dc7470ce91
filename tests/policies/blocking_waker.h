#pragma once
// A Waker for multi-threaded tests: blocks a thread until woken. As the proxy's waker does, it
// may be woken before anyone waits, and the wake is not lost.

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "policies/policy.h"

namespace arbiter {

class BlockingWaker final : public Waker {
 public:
  void wake() override {
    std::lock_guard lock(mutex_);
    woken_ = true;
    condition_.notify_one();
  }
  // True if woken (since the last wait) within the timeout; consumes the wake.
  bool wait_for(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    bool woken = condition_.wait_for(lock, timeout, [&] { return woken_; });
    woken_ = false;
    return woken;
  }

 private:
  std::mutex mutex_;
  std::condition_variable condition_;
  bool woken_ = false;
};

}  // namespace arbiter
