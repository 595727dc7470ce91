#pragma once
// The ConflictFeed of one Arbiter process, in memory (policies/store/conflict_feed.h is the
// contract). Every call completes at once: the interface's calls answer through the direct ones
// below.
//
// Thread-safety: every member may be called from any thread. One mutex guards the ring; it is
// held for O(1) work per publish, get and resolve (plus the copy of the event answered), and for
// a read for the events it examines (at most the ring; copied without bodies). Events and bodies
// that leave the ring are freed after it is released; listeners are called after it is released
// (FeedWatchers, with locks of their own).
//
// Memory: `capacity` events and the kept bodies. An event is a 48-byte entry in a deque (time,
// flags, body size, three owning pointers) and one allocation of its texts back to back, each a
// length (one byte, or five from 255 bytes up) and its bytes; a kept body and a resolution are
// allocations of their own. `build/table_memory_bench feed` measures 209.6 heap bytes an event
// without a body (100,000 conflicts, x86-64 glibc). Bodies are bounded twice: one larger than
// keep_body_bytes is never kept (TooLarge), and the kept bodies together stay within
// max_body_bytes: a publish that goes over it drops the bodies of the oldest events that still
// have one (Evicted) until it fits; the event itself stays. So the ring holds at most
// capacity x (an event without its body) + max_body_bytes (plus a std::string a kept body).
//
// Choices where the contract is silent:
// - A body is kept only when your_body is the whole body (your_body_size 0 or equal to its
//   length) and it fits both keep_body_bytes and max_body_bytes; it is counted by its length.
// - The `resolved` event resolve() publishes carries no body; the conflict it settles may be
//   dropped by that very publish when the capacity is 1.
// - set_limits: a smaller capacity drops the oldest events at once, a smaller max_body_bytes the
//   oldest bodies; bodies already kept are not re-judged against a smaller keep_body_bytes.
//   A capacity of 0 is taken as 1.

#include <cstddef>
#include <cstdint>
#include <memory>

#include "policies/store/conflict_feed.h"

namespace arbiter {

class MemoryConflictFeed final : public ConflictFeed {
 public:
  explicit MemoryConflictFeed(const FeedLimits& limits = {});
  ~MemoryConflictFeed() override;
  MemoryConflictFeed(const MemoryConflictFeed&) = delete;
  MemoryConflictFeed& operator=(const MemoryConflictFeed&) = delete;

  StoreCall publish(FeedEvent event, Completion<std::uint64_t> done) override {
    done(publish(std::move(event)));
    return nullptr;
  }
  StoreCall read(std::uint64_t after_id, const FeedFilter& filter, std::size_t limit, Completion<FeedPage> done) override {
    done(read(after_id, filter, limit));
    return nullptr;
  }
  StoreCall get(std::uint64_t id, Completion<FeedLookup> done) override {
    done(get(id));
    return nullptr;
  }
  StoreCall resolve(std::uint64_t id, const FeedResolution& resolution, FeedEvent resolved_event,
                    Completion<ResolveOutcome> done) override {
    done(resolve(id, resolution, std::move(resolved_event)));
    return nullptr;
  }
  FeedWatchHandle watch(FeedListener listener) override;
  void set_limits(const FeedLimits& limits) override;
  FeedStats stats() const override;

  // The same calls, answered directly (for tests, benchmarks and stores built on this one).
  std::uint64_t publish(FeedEvent event);
  FeedPage read(std::uint64_t after_id, const FeedFilter& filter, std::size_t limit) const;
  FeedLookup get(std::uint64_t id) const;
  ResolveOutcome resolve(std::uint64_t id, const FeedResolution& resolution, FeedEvent resolved_event);
  std::uint64_t last_id() const;  // 0: nothing published yet
  std::size_t size() const;       // events held

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace arbiter
