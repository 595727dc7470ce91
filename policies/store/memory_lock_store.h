#pragma once
// The LockStore of one Arbiter process, in memory. One instance lives as long as the process's
// RuntimeState, so locks survive reloads and every route and worker sees the same ones.
//
// Expiry is exact without a timer: every call first ends the lock of the resource it touches if
// its lease has run out at the caller's `now`, and the counts that bound the table (max_locks,
// max_locks_per_client) and the gauge sweep every expired lock before they are trusted. A queued
// request parks until it is woken or the holder's lease ends, whichever is first, so the lock is
// handed over within one park of its expiry.
//
// Queues: first come, first served per resource, LOCKs and writes in one queue. The first place
// goes on when the lock is free: a LOCK takes it, a write passes (and the next place is woken at
// once, since a write holds nothing). Newcomers never overtake a queue.
//
// Ended tokens: the last kEndedPerShard tokens that ended in each of the kShards shards are kept
// (32 bytes each: at most 1 MiB, allocated as locks end), with the hash of their resource and
// how they ended, so that a
// late holder is told its lock ended (UNLOCK: 204, a write: 412) and a token of another resource
// is told apart (UNLOCK: 409).
//
// Thread-safety: every member may be called from any thread; resources are spread over shards by
// the hash of their key, each with its own mutex, and the per-client counts have one of their
// own (taken only inside a shard's, never the other way), shared with the route names and the
// per-route counts of ended locks. Wakers are called after every lock is released. Lifetime: must outlive every LockPlace it handed out (the policy keeps it by
// shared_ptr).

#include <array>
#include <atomic>
#include <cstddef>
#include <deque>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "policies/store/lock_store.h"

namespace arbiter {

class MemoryLockStore final : public LockStore {
 public:
  MemoryLockStore();
  ~MemoryLockStore() override;
  MemoryLockStore(const MemoryLockStore&) = delete;
  MemoryLockStore& operator=(const MemoryLockStore&) = delete;

  // The interface completes at once with the direct calls below.
  StoreCall ask(const LockAsk& ask, Completion<LockAnswer> done) override {
    done(ask_now(ask));
    return nullptr;
  }
  StoreCall refresh(std::string_view resource, const LockToken& token, std::chrono::seconds timeout,
                    MonotonicTime now, Completion<LockChange> done) override {
    done(refresh_now(resource, token, timeout, now));
    return nullptr;
  }
  StoreCall unlock(std::string_view resource, const LockToken& token, MonotonicTime now,
                   Completion<LockChange> done) override {
    done(unlock_now(resource, token, now));
    return nullptr;
  }
  StoreCall describe(std::string_view resource, MonotonicTime now,
                     Completion<std::optional<LockView>> done) override {
    done(describe_now(resource, now));
    return nullptr;
  }
  StoreCall list(std::string_view after, std::size_t limit, MonotonicTime now,
                 Completion<std::vector<LockView>> done) override {
    done(list_now(after, limit, now));
    return nullptr;
  }
  StoreCall break_lock(std::string_view resource, MonotonicTime now,
                       Completion<std::optional<LockView>> done) override {
    done(break_now(resource, now));
    return nullptr;
  }
  StoreCall take_expired(MonotonicTime now, Completion<std::vector<LockView>> done) override {
    done(take_expired_now(now));
    return nullptr;
  }
  StoreCall keep_routes(std::span<const std::string> routes, MonotonicTime now, Completion<std::size_t> done) override {
    done(keep_routes_now(routes, now));
    return nullptr;
  }
  std::size_t held(std::string_view route, MonotonicTime now) const override;

  LockAnswer ask_now(const LockAsk& ask);
  LockChange refresh_now(std::string_view resource, const LockToken& token, std::chrono::seconds timeout,
                         MonotonicTime now);
  LockChange unlock_now(std::string_view resource, const LockToken& token, MonotonicTime now);
  std::optional<LockView> describe_now(std::string_view resource, MonotonicTime now);
  std::vector<LockView> list_now(std::string_view after, std::size_t limit, MonotonicTime now);
  std::optional<LockView> break_now(std::string_view resource, MonotonicTime now);
  std::vector<LockView> take_expired_now(MonotonicTime now);
  std::size_t keep_routes_now(std::span<const std::string> routes, MonotonicTime now);

  // Locks held at `now`, over every route.
  std::size_t size(MonotonicTime now) const;
  std::uint64_t ended(std::string_view route, LockEnd how) const override;

  // What one held lock with short strings (resource, owner, route and client within the
  // standard library's small-string buffer) costs on the heap, its table's share included.
  static std::size_t approximate_bytes_per_lock() noexcept;

  static constexpr std::size_t kShards = 32;
  static constexpr std::size_t kEndedPerShard = 1024;
  // Expired locks kept for take_expired between two calls; beyond, the oldest are dropped.
  static constexpr std::size_t kMaxUnreportedExpiries = 10000;

 private:
  struct Entry;
  struct Shard;
  class Place;
  struct Wakes;

  Shard& shard_of(std::string_view resource) const;
  std::uint64_t resource_id(std::string_view resource) const noexcept;
  // Ends the lock of `entry` if its lease has run out at `now` (under the shard's lock).
  void expire_if_due(Shard& shard, std::string_view resource, Entry& entry, MonotonicTime now, Wakes& wakes);
  // Ends the lock held in `entry` (under the shard's lock), remembering its token; the first
  // place in line is woken.
  void end_lock(Shard& shard, std::string_view resource, Entry& entry, LockEnd how, Wakes& wakes);
  // How the lock of `token` on `resource` ended, if the shard remembers it (under its lock).
  std::optional<LockEnd> ended_token(const Shard& shard, std::string_view resource, const LockToken& token) const;
  // Applies `apply` to the lock of `resource` when `token` is its token (refresh, unlock).
  LockChange change(std::string_view resource, const LockToken& token, MonotonicTime now,
                    const std::function<void(Shard&, Entry&, Wakes&)>& apply);
  // Ends every expired lock and erases idle entries; a pass over every shard.
  void sweep(MonotonicTime now);
  // Erases `resource`'s entry when it has neither a lock nor a queue (under the shard's lock).
  static void erase_if_idle(Shard& shard, std::string_view resource);
  // The lock held on `resource` at `now`, ended `end` when given (break).
  std::optional<LockView> held_lock(std::string_view resource, MonotonicTime now, std::optional<LockEnd> end);
  // A place's destructor: leaves its queue.
  void leave(Place& place);
  // Counts a new lock against the table (max_locks) and `client` (max_per_client, 0: no cap),
  // exactly even when threads race; false (and `refused` says which) when either is full.
  bool reserve(std::string_view client, std::size_t max_locks, std::size_t max_per_client,
               LockAnswer::Outcome& refused);
  void uncount_client_locked(std::string_view client);  // under counts_mutex_
  // Routes are interned: an entry keeps a 4-byte id; ids are never reused nor forgotten (a
  // process has few routes, reloads keep names).
  std::uint32_t route_id(std::string_view route);
  std::optional<std::uint32_t> known_route(std::string_view route) const;
  std::string route_name(std::uint32_t id) const;
  LockView view_of(std::string_view resource, const Entry& entry) const;

  std::uint64_t seed_;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<std::uint64_t> next_fence_{1};
  mutable std::atomic<std::size_t> locks_{0};  // held, expired ones not yet swept included
  mutable std::mutex counts_mutex_;  // the three below
  struct StringKeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const noexcept { return std::hash<std::string_view>{}(key); }
  };
  std::unordered_map<std::string, std::size_t, StringKeyHash, std::equal_to<>> clients_;  // client key -> locks held
  struct Route {
    std::string name;
    std::array<std::uint64_t, 4> ended{};  // locks taken through it that ended, by LockEnd
  };
  std::vector<Route> routes_;  // by id
  std::mutex expired_mutex_;     // the one below; taken under a shard's mutex, never the reverse
  std::deque<LockView> expired_;  // ended by expiry since the last take_expired, oldest first
  std::unordered_map<std::string, std::uint32_t, StringKeyHash, std::equal_to<>> route_ids_;
};

}  // namespace arbiter
