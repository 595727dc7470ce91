#pragma once
// What the policies' unit tests share: a fake clock the tests move by hand, and the body of a
// problem answer as JSON.

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "policies/policy.h"

namespace arbiter::testing {

// The time the policy under test is told; it moves only when a test moves it.
struct FakeClock {
  MonotonicTime now = MonotonicTime{} + std::chrono::seconds(1000);
  void advance(std::chrono::milliseconds by) { now += by; }
};

// The problem+json body of a Reply decision; a failure (and null) when it is not a problem.
inline nlohmann::json problem_body(const Decision& decision) {
  if (!decision.problem()) {
    ADD_FAILURE() << "not a problem answer";
    return {};
  }
  return nlohmann::json::parse(decision.problem()->to_json(""));
}

}  // namespace arbiter::testing
