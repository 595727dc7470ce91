#include "policies/store/memory_conflict_feed.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace arbiter {

namespace {

// An event as the ring holds it: the body apart, so that read() copies events without it.
struct HeldEvent {
  FeedEvent event;   // your_body always empty
  std::string body;  // when event.body == FeedBody::Kept
};

// What leaves the ring under the lock, freed after it is released.
struct Garbage {
  std::vector<HeldEvent> events;
  std::vector<std::string> bodies;
};

}  // namespace

struct MemoryConflictFeed::State {
  mutable std::mutex mutex;
  // Guarded by mutex:
  FeedLimits limits;
  std::deque<HeldEvent> ring;           // ids first_id() .. next_id - 1, oldest first
  std::uint64_t next_id = 1;
  std::uint64_t no_body_before = 1;     // no held event with an id below this keeps its body
  std::map<std::string, std::uint64_t, std::less<>> published;  // per type
  FeedStats counters;                   // all but last_id, held and published
  // Thread-safe on its own; called without mutex.
  FeedWatchers watchers;

  std::uint64_t first_id() const noexcept { return next_id - ring.size(); }

  HeldEvent* find(std::uint64_t id) {
    if (id < first_id() || id >= next_id) return nullptr;
    return &ring[id - first_id()];
  }

  FeedFind find_state(std::uint64_t id) const noexcept {
    if (id == 0 || id >= next_id) return FeedFind::Unknown;
    return id < first_id() ? FeedFind::Dropped : FeedFind::Found;
  }

  // Numbers and appends `event`, its body judged against the limits; returns its id.
  std::uint64_t append(FeedEvent&& event, Garbage& garbage) {
    HeldEvent held;
    held.body = std::move(event.your_body);
    held.event = std::move(event);
    FeedEvent& stored = held.event;
    stored.id = next_id++;
    stored.resolved.reset();
    if (stored.your_body_size == 0) stored.your_body_size = held.body.size();
    if (stored.your_body_size == 0) {
      stored.body = FeedBody::None;
    } else if (held.body.size() == stored.your_body_size && held.body.size() <= limits.keep_body_bytes &&
               held.body.size() <= limits.max_body_bytes) {
      stored.body = FeedBody::Kept;
      ++counters.bodies_kept;
      counters.body_bytes += held.body.size();
    } else {
      stored.body = FeedBody::TooLarge;
      ++counters.bodies_too_large;
      garbage.bodies.push_back(std::move(held.body));
      held.body = {};
    }
    auto it = published.find(stored.type);
    if (it == published.end()) it = published.emplace(stored.type, 0).first;
    ++it->second;
    ring.push_back(std::move(held));
    enforce(garbage);
    return next_id - 1;
  }

  // Brings the ring within its limits: the oldest events, then the oldest bodies, go.
  void enforce(Garbage& garbage) {
    while (ring.size() > std::max<std::size_t>(1, limits.capacity)) {
      HeldEvent& oldest = ring.front();
      if (oldest.event.body == FeedBody::Kept) forget_body(oldest);
      garbage.events.push_back(std::move(oldest));
      ring.pop_front();
      ++counters.dropped;
    }
    no_body_before = std::max(no_body_before, first_id());
    while (counters.body_bytes > limits.max_body_bytes) {
      HeldEvent& held = *find(no_body_before);
      ++no_body_before;
      if (held.event.body != FeedBody::Kept) continue;
      forget_body(held);
      held.event.body = FeedBody::Evicted;
      ++counters.bodies_evicted;
      garbage.bodies.push_back(std::move(held.body));
      held.body = {};
    }
  }

  void forget_body(const HeldEvent& held) noexcept {
    --counters.bodies_kept;
    counters.body_bytes -= held.body.size();
  }
};

MemoryConflictFeed::MemoryConflictFeed(const FeedLimits& limits) : state_(std::make_unique<State>()) {
  state_->limits = limits;
}

MemoryConflictFeed::~MemoryConflictFeed() = default;

std::uint64_t MemoryConflictFeed::publish(FeedEvent event) {
  Garbage garbage;
  std::uint64_t id;
  {
    std::lock_guard lock(state_->mutex);
    id = state_->append(std::move(event), garbage);
  }
  state_->watchers.notify(id);
  return id;
}

FeedPage MemoryConflictFeed::read(std::uint64_t after_id, const FeedFilter& filter, std::size_t limit) const {
  const State& state = *state_;
  FeedPage page;
  std::lock_guard lock(state.mutex);
  const std::uint64_t first = state.first_id();
  page.last_id = state.next_id - 1;
  page.reset = after_id != 0 && (after_id + 1 < first || after_id > page.last_id);
  const std::uint64_t start = page.reset ? first : std::max(after_id + 1, first);
  page.next = start - 1;
  for (std::uint64_t id = start; id < state.next_id && page.events.size() < limit; ++id) {
    const FeedEvent& event = state.ring[id - first].event;
    page.next = id;
    if (filter.matches(event)) page.events.push_back(event);
  }
  return page;
}

FeedLookup MemoryConflictFeed::get(std::uint64_t id) const {
  FeedLookup lookup;
  std::lock_guard lock(state_->mutex);
  lookup.find = state_->find_state(id);
  if (lookup.find != FeedFind::Found) return lookup;
  const HeldEvent& held = *state_->find(id);
  lookup.event = held.event;
  lookup.event.your_body = held.body;
  return lookup;
}

ResolveOutcome MemoryConflictFeed::resolve(std::uint64_t id, const FeedResolution& resolution, FeedEvent resolved_event) {
  ResolveOutcome outcome;
  Garbage garbage;
  {
    std::lock_guard lock(state_->mutex);
    State& state = *state_;
    switch (state.find_state(id)) {
      case FeedFind::Unknown: outcome.result = ResolveResult::Unknown; return outcome;
      case FeedFind::Dropped: outcome.result = ResolveResult::Dropped; return outcome;
      case FeedFind::Found: break;
    }
    FeedEvent& conflict = state.find(id)->event;
    if (conflict.type != kFeedConflict) {
      outcome.result = ResolveResult::NotAConflict;
      return outcome;
    }
    if (conflict.resolved) {
      outcome.result = ResolveResult::AlreadyResolved;
      outcome.resolution = *conflict.resolved;
      return outcome;
    }
    outcome.result = ResolveResult::Resolved;
    outcome.resolution = resolution;
    outcome.resolution.event_id = state.next_id;
    conflict.resolved = outcome.resolution;
    ++state.counters.resolved;
    resolved_event.type = kFeedResolved;
    resolved_event.route = conflict.route;
    resolved_event.resource = conflict.resource;
    resolved_event.your_body.clear();
    resolved_event.your_body_size = 0;
    state.append(std::move(resolved_event), garbage);  // may drop `conflict`: not used after
  }
  state_->watchers.notify(outcome.resolution.event_id);
  return outcome;
}

FeedWatchHandle MemoryConflictFeed::watch(FeedListener listener) { return state_->watchers.watch(std::move(listener)); }

void MemoryConflictFeed::set_limits(const FeedLimits& limits) {
  Garbage garbage;
  std::lock_guard lock(state_->mutex);
  state_->limits = limits;
  state_->enforce(garbage);
}

FeedStats MemoryConflictFeed::stats() const {
  std::lock_guard lock(state_->mutex);
  FeedStats stats = state_->counters;
  stats.last_id = state_->next_id - 1;
  stats.held = state_->ring.size();
  stats.published.assign(state_->published.begin(), state_->published.end());
  return stats;
}

std::uint64_t MemoryConflictFeed::last_id() const {
  std::lock_guard lock(state_->mutex);
  return state_->next_id - 1;
}

std::size_t MemoryConflictFeed::size() const {
  std::lock_guard lock(state_->mutex);
  return state_->ring.size();
}

}  // namespace arbiter
