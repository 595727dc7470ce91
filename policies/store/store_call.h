#pragma once
// How a policy calls a store: every call may complete later, so that a store on the network
// (Redis, shared by several Arbiter processes) never blocks a worker's loop, while the memory
// stores answer through the same path at once, at the cost of one indirect call.
//
// The contract, for every store call that takes a Completion<T> and returns a StoreCall:
//
// - Exactly once, the store calls the completion with a StoreResult<T>: a value, or an error.
// - Completed at once: the store calls the completion before returning and returns a null
//   StoreCall. The memory stores always do; the caller then goes on as if the call were an
//   ordinary function call.
// - Completed later: the store returns a non-null StoreCall and calls the completion afterwards,
//   on the thread that made the call (the worker's loop; never from inside another call of that
//   worker's policies, never from another thread). A policy in the request phase then answers
//   Decision::wait_until(deadline); its completion records the result in the policy's
//   ExchangeState and wakes the request's Waker, and on_request() runs again and finds it.
// - Cancelling: the StoreCall is owned by the caller. Destroying it before the completion has
//   run cancels the call, on the caller's thread: the completion will never run, and whatever
//   the call would have handed over (a write turn, an in-flight slot) is given back by the
//   store. A mutation (put, learn, forget, refund) is sent when the call is made: cancelling it
//   drops only its completion, and it still lands, in order. Destroying it after the completion
//   ran does nothing. So a caller keeps the StoreCall in the very object its
//   completion points at (its ExchangeState): when the exchange ends, whichever way, the state
//   goes, the call is cancelled with it, and a completion never reaches a dead exchange.
// - Order: calls one caller makes to one store complete in the order made, so a mutation that
//   a caller does not wait for (the response phase, see below) still lands before its next call.
// - Errors: a store that cannot answer (unreachable, timed out) completes with
//   StoreError::Unavailable and a default value; a call still outstanding after
//   kStoreCallTimeout is cancelled by the policy and counts as unavailable. A policy in the request phase answers
//   503 application/problem+json, type urn:arbiter:problem:store-unavailable, with
//   Retry-After: 1 (store_unavailable() below), and forwards nothing; an operator-configurable
//   mode (fail open for rate limits, say) is for the store that can fail.
// - After the request phase today's policies do not park on a store (the exchange could, with
//   ResponseStep::wait_until, while the response is held back): they make their calls and go
//   on without waiting for a call that did not complete at once (a mutation lands later, in
//   order; a read counts as unknown). The memory stores always complete at once, so nothing
//   changes for them.
//
// Completion<T> is a non-owning reference to a callable (an object pointer and a function
// pointer, as a function_ref): no allocation per call, and the store keeps it only as long as
// the StoreCall lives.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "policies/policy.h"

namespace arbiter {

enum class StoreError : std::uint8_t {
  None,
  Unavailable,  // the store could not answer: the value is meaningless
};

template <typename T>
struct StoreResult {
  T value{};
  StoreError error = StoreError::None;
  bool ok() const noexcept { return error == StoreError::None; }
};

// The value of a call that only reports that it is done (a put, a forget).
struct Done {};

template <typename T>
class Completion {
 public:
  // Refers to `callable` (a lambda, or any object with operator()(StoreResult<T>&&)), which
  // must outlive the call: until the completion ran or the StoreCall was destroyed.
  template <typename Callable,
            typename = std::enable_if_t<!std::is_same_v<std::remove_cvref_t<Callable>, Completion>>>
  Completion(Callable& callable) noexcept  // NOLINT(google-explicit-constructor): passed inline
      : object_(static_cast<void*>(&callable)), call_([](void* object, StoreResult<T>&& result) {
          (*static_cast<Callable*>(object))(std::move(result));
        }) {}

  // Refers to object.*Member(StoreResult<T>&&).
  template <auto Member, typename Object>
  static Completion to(Object& object) noexcept {
    return Completion(static_cast<void*>(&object), [](void* target, StoreResult<T>&& result) {
      (static_cast<Object*>(target)->*Member)(std::move(result));
    });
  }

  void operator()(StoreResult<T>&& result) const { call_(object_, std::move(result)); }
  void operator()(T value) const { call_(object_, StoreResult<T>{std::move(value), StoreError::None}); }

 private:
  Completion(void* object, void (*call)(void*, StoreResult<T>&&)) noexcept : object_(object), call_(call) {}
  void* object_;
  void (*call_)(void*, StoreResult<T>&&);
};

// The completion of a call whose outcome the caller does not wait for (a mutation after the
// request phase, say): the call is sent in order, and dropping its StoreCall drops only this
// completion.
struct IgnoredResult {
  template <typename T>
  void operator()(StoreResult<T>&&) const noexcept {}
};
inline IgnoredResult ignored_result;
template <typename T>
Completion<T> ignored() {
  return Completion<T>(ignored_result);
}

// A store call that has not completed yet; see the contract above. Destroying it cancels.
class PendingStoreCall {
 public:
  virtual ~PendingStoreCall() = default;
};
// Null: the call completed before returning.
using StoreCall = std::unique_ptr<PendingStoreCall>;

// How long a request-phase policy waits for a call that did not complete at once before it
// cancels it and answers as for StoreError::Unavailable. A remote store times its own calls out
// sooner; this bounds a store that never answers.
inline constexpr std::chrono::seconds kStoreCallTimeout{2};

// What a request-phase policy keeps in its ExchangeState for the store call it makes: the call
// while it has not completed (cancelled with the state), whom to wake, and until when to wait.
// Used on one exchange's thread only, as the completions are.
class StoreWait {
 public:
  // From the completion: the call is done (ok: without an error). A call that completed later
  // wakes the request, so that on_request() runs again.
  void answered(bool ok) {
    failed_ = !ok;
    done_ = true;
    if (call_ && waker_) waker_->wake();
  }
  // Before each call.
  void start() noexcept {
    done_ = false;
    failed_ = false;
  }
  // For a call that did not complete at once: parks the request until it does, or for at most
  // kStoreCallTimeout.
  Decision park(const RequestView& request, StoreCall call) {
    call_ = std::move(call);
    waker_ = request.waker;
    deadline_ = request.now + kStoreCallTimeout;
    return Decision::wait_until(deadline_);
  }
  // The request is parked on a call: on_request() must resume().
  bool parked() const noexcept { return call_ != nullptr; }
  // on_request() again while parked: true when the policy may go on (the call completed, or
  // timed out: then it is cancelled and counts as failed); false: wait on, until deadline().
  bool resume(MonotonicTime now) {
    if (!done_) {
      if (now < deadline_) return false;
      failed_ = true;
    }
    call_.reset();
    waker_.reset();
    return true;
  }
  MonotonicTime deadline() const noexcept { return deadline_; }
  bool failed() const noexcept { return failed_; }

 private:
  StoreCall call_;
  std::shared_ptr<Waker> waker_;
  MonotonicTime deadline_{};
  bool done_ = false;
  bool failed_ = false;
};

// The answer of a request-phase policy whose store failed: 503 problem+json with
// Retry-After: 1, nothing forwarded. `what` names the store ("the rate-limit bucket store").
inline Decision store_unavailable(std::string_view what) {
  return Decision::reply(Problem::make("store-unavailable", 503, "Store unavailable",
                                       "Arbiter could not reach " + std::string(what) +
                                           " to decide this request; nothing was forwarded. Retry shortly."),
                         HeaderList{{"Retry-After", "1"}});
}

}  // namespace arbiter
