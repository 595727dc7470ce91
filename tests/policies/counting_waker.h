#pragma once
// A Waker for tests: counts its wakes, from any thread.

#include <atomic>

#include "policies/policy.h"

namespace arbiter {

class CountingWaker final : public Waker {
 public:
  void wake() override { wakes.fetch_add(1); }
  std::atomic<int> wakes{0};
};

}  // namespace arbiter
