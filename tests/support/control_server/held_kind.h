#pragma once
// A policy kind built only into arbiter-test-handlers: [route.held], whose policy parks its
// request in the request, response and end phases on a call to a deliberately delayed store,
// the HeldStore, which answers a call only when a test releases it (POST
// {control_prefix}/test/release, test_handlers.h). It shows, through the real binary, that an
// exchange parked on a store that completes later holds nothing else up: the worker goes on
// serving other requests meanwhile.
//
//   [route.held]
//   phases = ["request", "response", "end"]   # where the policy parks (default: all three)
//
// A forwarded answer carries `Held-Phases: request, response`: the phases that parked and were
// resumed by their store call's answer. /metrics counts each phase's calls:
// arbiter_held_calls_total{route, phase, outcome="answered"|"gave_up"} (gave up: not answered
// within kHoldLimit, then the request phase answers 503).

#include <chrono>
#include <cstddef>

#include "policies/policy_kind.h"
#include "policies/policy_registry.h"
#include "policies/store/store_call.h"

namespace arbiter::testing {

// How long a held call may wait for its release before the policy gives up on it: far longer
// than any test takes to release it, so no outcome depends on the machine's speed.
inline constexpr std::chrono::seconds kHoldLimit{120};

// The delayed store. Its one call, hold(), completes only when release() is called on the thread
// that made it (each worker's calls wait in a list of that worker's; the release handler runs
// on the worker's loop), so a completion always runs on the calling worker's loop, as the store
// contract (policies/store/store_call.h) asks, and never from inside a call of its policies.
class HeldStore {
 public:
  // Never completes at once: the StoreCall is always non-null. Destroying it before release
  // cancels the call (it leaves the list).
  StoreCall hold(Completion<Done> done);
  // Completes up to `count` of this thread's held calls, oldest first; returns how many.
  std::size_t release(std::size_t count);
  // This thread's calls waiting for release.
  std::size_t held() const;
};

HeldStore& held_store();

const PolicyKind& held_kind();
// The product's kinds and [route.held]: product_policy_registry() with the one registration line.
PolicyRegistry with_held();

}  // namespace arbiter::testing
