#pragma once
// Where lock leases live (the lock policy, policies/lock/): per resource, at most one lock, held
// by whoever has its token until it is released, broken, or its lease ends; requests that must
// wait for it queue first come, first served. Resource state that must never be lost, keyed by
// the resource identity the ETag policy uses, shared by every route and worker; one store lives
// as long as the process's RuntimeState, so locks survive reloads.
//
// Every lock is a lease: granted for a timeout, ended at `expires` unless refreshed. Every grant
// carries a fence number larger than every earlier grant's, so that a backend can refuse the
// writes of a holder whose lease has ended (the fence goes upstream with the holder's writes).
// A store shared by several processes (Redis) keeps the same promises: expiry is a time, not a
// destructor, and fences come from one counter.
//
// Tokens: a lock's token is its holder's proof (RFC 4918 section 6.5). The store never reveals
// it to anyone but the request that was granted it (LockAnswer::token of a grant); what others
// may see is a LockView. Tokens of locks that ended are remembered for a while (a bounded
// number), so a holder that comes back late is told its lock ended rather than that its token
// is unknown.
//
// Every call may complete later: see policies/store/store_call.h for the contract.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "policies/policy.h"
#include "policies/store/store_call.h"

namespace arbiter {

// A lock token: a random (version 4) UUID, written urn:uuid:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.
struct LockToken {
  std::array<std::uint8_t, 16> bytes{};

  static LockToken random();
  // The token of "urn:uuid:..." (case-insensitive hex); nullopt for anything else.
  static std::optional<LockToken> parse(std::string_view uri) noexcept;
  std::string text() const;  // "urn:uuid:..."
  bool operator==(const LockToken&) const = default;
};

// How a lock ended.
enum class LockEnd : std::uint8_t {
  Released,  // UNLOCK by its holder
  Expired,   // its lease ran out
  Broken,    // an operator broke it (admin DELETE /locks)
  Dropped,   // its route no longer has a lock policy (a reload)
};
std::string_view lock_end_name(LockEnd end) noexcept;  // "released", "expired", ...

// What anyone may know of a held lock (never its token).
struct LockView {
  std::string resource;
  std::string owner;   // the holder's label; empty when it gave none
  std::string route;   // the route it was taken through
  std::string client;  // the client key it counts against
  std::uint64_t fence = 0;
  std::chrono::seconds timeout{0};  // the lease granted (or last refreshed)
  MonotonicTime expires{};
  std::size_t waiters = 0;  // requests queued for the resource
};

// A queued request's place in a resource's queue. Destroying it leaves the queue (and, when it
// was first, lets the next one go on: its Waker is woken). Thread-safe.
class LockPlace {
 public:
  virtual ~LockPlace() = default;
};

// A request's question to the store: may it go on, given the resource's lock?
struct LockAsk {
  enum class Kind : std::uint8_t {
    Lock,   // LOCK without a token to refresh: grant a new lock when the resource is free
    Write,  // a write (or, with block_reads, a read): go on when free or when the holder's
            // token is among `tokens`
  };
  Kind kind = Kind::Write;
  std::string_view resource;
  std::string_view route;
  std::string_view client;  // the client key (max_locks_per_client)
  std::string_view owner;   // Lock: the holder's label
  std::span<const LockToken> tokens;  // Write: the tokens the request submitted (If)
  std::chrono::seconds timeout{0};    // Lock: the lease
  MonotonicTime now{};
  std::size_t max_locks = 0;
  std::size_t max_locks_per_client = 0;
  // Queueing: when the request must wait and `queue` is set, it joins the resource's queue
  // (unless max_waiters already wait) and `waker` is woken when it may ask again and go on.
  bool queue = false;
  std::size_t max_waiters = 0;
  std::shared_ptr<Waker> waker;
  // The place an earlier Queued answer gave this request; the store may move it on.
  LockPlace* place = nullptr;
};

// The state of a submitted token for the resource asked about.
enum class TokenState : std::uint8_t {
  Current,  // the token of the lock held now
  Ended,    // a token of a lock of this resource that has ended (see LockAnswer::ended)
  Unknown,  // not a token of this resource's locks (or one forgotten since)
};

struct LockAnswer {
  enum class Outcome : std::uint8_t {
    Granted,     // Lock: granted (token, fence, expires)
    Admitted,    // Write: go on (fence: the holder's when its token was submitted, else 0)
    Locked,      // another holds the lock (holder); not queued
    Queued,      // another holds it or others wait first; the request has a place (place) and
                 // asks again when woken, or at holder.expires at the latest
    QueueFull,   // another holds it and max_waiters already wait (holder)
    TableFull,   // Lock: max_locks locks are held
    ClientFull,  // Lock: the client holds max_locks_per_client locks
  };
  Outcome outcome = Outcome::Admitted;
  LockView holder;  // Locked, Queued, QueueFull: the lock in the way (or, queued behind others
                    // while it is free, the resource with fence 0)
  LockToken token;  // Granted only
  std::uint64_t fence = 0;
  std::chrono::seconds timeout{0};
  MonotonicTime expires{};
  std::unique_ptr<LockPlace> place;  // Queued, when the ask had none (else the ask's place stays)
  std::vector<TokenState> tokens;    // Write: the state of each submitted token, in order
  LockEnd ended = LockEnd::Expired;  // how the first Ended token's lock ended
};

// Refresh (LOCK with If: its token) and UNLOCK.
struct LockChange {
  enum class Outcome : std::uint8_t {
    Done,     // refreshed (view: the lock with its new expiry) or released
    Ended,    // the token's lock ended before (ended says how): nothing to do
    Unknown,  // not a token of this resource's locks
  };
  Outcome outcome = Outcome::Unknown;
  LockView view;
  LockEnd ended = LockEnd::Expired;
};

class LockStore {
 public:
  virtual ~LockStore() = default;

  virtual StoreCall ask(const LockAsk& ask, Completion<LockAnswer> done) = 0;
  virtual StoreCall refresh(std::string_view resource, const LockToken& token, std::chrono::seconds timeout,
                            MonotonicTime now, Completion<LockChange> done) = 0;
  virtual StoreCall unlock(std::string_view resource, const LockToken& token, MonotonicTime now,
                           Completion<LockChange> done) = 0;
  // The lock held on `resource` at `now`, if any.
  virtual StoreCall describe(std::string_view resource, MonotonicTime now,
                             Completion<std::optional<LockView>> done) = 0;
  // Held locks in resource order, starting after `after` (empty: from the first), at most `limit`.
  virtual StoreCall list(std::string_view after, std::size_t limit, MonotonicTime now,
                         Completion<std::vector<LockView>> done) = 0;
  // Ends the lock on `resource` (LockEnd::Broken); the lock that was broken, if one was held.
  virtual StoreCall break_lock(std::string_view resource, MonotonicTime now,
                               Completion<std::optional<LockView>> done) = 0;
  // Ends (LockEnd::Dropped) every lock taken through a route not in `routes` (a reload removed
  // their lock policy); how many.
  virtual StoreCall keep_routes(std::span<const std::string> routes, MonotonicTime now,
                                Completion<std::size_t> done) = 0;

  // Ends every lock whose lease ran out by `now`, then answers the locks that ended by expiry
  // since the last call (here, or found expired by any other call), oldest first, and forgets
  // them: what the conflict feed's `lock-expired` events are made of. A store keeps a bounded
  // number between calls (the oldest are dropped); one caller per process calls it, on a timer.
  virtual StoreCall take_expired(MonotonicTime now, Completion<std::vector<LockView>> done) = 0;

  // Locks held now through `route`, as far as this process knows (a gauge; never waits).
  virtual std::size_t held(std::string_view route, MonotonicTime now) const = 0;
  // Locks taken through `route` that ended `how`, as far as this process knows (never waits).
  virtual std::uint64_t ended(std::string_view route, LockEnd how) const = 0;
};

}  // namespace arbiter
