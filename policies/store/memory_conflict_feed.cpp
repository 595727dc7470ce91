#include "policies/store/memory_conflict_feed.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace arbiter {

namespace {

// ---- An event's texts, packed into one block ----
//
// Each text is its length (one byte below 255, else 255 and four bytes: a text is below 4 GiB)
// and its bytes, in the order of texts_of(), then the count of conflict pointers (as a length)
// and each pointer.

constexpr unsigned char kLongLength = 255;

std::size_t length_size(std::size_t length) noexcept { return length < kLongLength ? 1 : 1 + sizeof(std::uint32_t); }

char* write_length(char* out, std::size_t length) noexcept {
  if (length < kLongLength) {
    *out++ = static_cast<char>(length);
    return out;
  }
  *out++ = static_cast<char>(kLongLength);
  auto long_length = static_cast<std::uint32_t>(length);
  std::memcpy(out, &long_length, sizeof long_length);
  return out + sizeof long_length;
}

char* write_text(char* out, std::string_view text) noexcept {
  out = write_length(out, text.size());
  if (!text.empty()) std::memcpy(out, text.data(), text.size());  // an empty view's data() may be null
  return out + text.size();
}

// Reads the texts of a block in order.
class TextReader {
 public:
  explicit TextReader(const char* block) noexcept : at_(block) {}
  std::size_t length() noexcept {
    auto length = static_cast<unsigned char>(*at_++);
    if (length < kLongLength) return length;
    std::uint32_t long_length;
    std::memcpy(&long_length, at_, sizeof long_length);
    at_ += sizeof long_length;
    return long_length;
  }
  std::string_view text() noexcept {
    std::size_t size = length();
    std::string_view text(at_, size);
    at_ += size;
    return text;
  }

 private:
  const char* at_;
};

// The optional ETags present, as bits of HeldEvent::etags.
enum EtagBits : std::uint8_t { kYourEtag = 1, kCurrentEtag = 2, kBaseEtag = 4 };

std::string_view text_or_empty(const std::optional<std::string>& text) noexcept {
  return text ? std::string_view(*text) : std::string_view();
}

// The texts in the order they are packed (the first three are what a filter looks at).
std::array<std::string_view, 11> texts_of(const FeedEvent& event) noexcept {
  return {event.type, event.route, event.resource, event.request_id, event.client, event.method,
          text_or_empty(event.your_etag), text_or_empty(event.current_etag), text_or_empty(event.base_etag),
          event.details, event.your_content_type};
}

std::unique_ptr<char[]> pack_texts(const FeedEvent& event) {
  std::size_t size = length_size(event.conflicts.size());
  for (std::string_view text : texts_of(event)) size += length_size(text.size()) + text.size();
  for (const std::string& pointer : event.conflicts) size += length_size(pointer.size()) + pointer.size();
  auto block = std::make_unique_for_overwrite<char[]>(size);
  char* out = block.get();
  for (std::string_view text : texts_of(event)) out = write_text(out, text);
  out = write_length(out, event.conflicts.size());
  for (const std::string& pointer : event.conflicts) out = write_text(out, pointer);
  return block;
}

// An event as the ring holds it: 48 bytes and the block of its texts; the body and the
// resolution apart (the one may be evicted, the other comes later). Its id is its place.
struct HeldEvent {
  WallTime time;
  std::unique_ptr<char[]> texts;             // pack_texts()
  std::unique_ptr<std::string> body;         // when body_state == Kept (body_size bytes)
  std::unique_ptr<FeedResolution> resolved;  // null until resolve()
  std::uint64_t body_size = 0;
  FeedBody body_state = FeedBody::None;
  std::uint8_t etags = 0;                    // EtagBits

  std::string_view type() const noexcept { return TextReader(texts.get()).text(); }

  // The event, its body copied when `with_body`.
  FeedEvent unpack(std::uint64_t id, bool with_body) const {
    FeedEvent event;
    event.id = id;
    event.time = time;
    TextReader reader(texts.get());
    event.type = reader.text();
    event.route = reader.text();
    event.resource = reader.text();
    event.request_id = reader.text();
    event.client = reader.text();
    event.method = reader.text();
    std::string_view your_etag = reader.text();
    std::string_view current_etag = reader.text();
    std::string_view base_etag = reader.text();
    if (etags & kYourEtag) event.your_etag = your_etag;
    if (etags & kCurrentEtag) event.current_etag = current_etag;
    if (etags & kBaseEtag) event.base_etag = base_etag;
    event.details = reader.text();
    event.your_content_type = reader.text();
    event.conflicts.resize(reader.length());
    for (std::string& pointer : event.conflicts) pointer = reader.text();
    event.your_body_size = body_size;
    event.body = body_state;
    if (with_body && body_state == FeedBody::Kept) event.your_body = *body;
    if (resolved) event.resolved = *resolved;
    return event;
  }
};

static_assert(sizeof(HeldEvent) <= 48, "the per-event cost documented in memory_conflict_feed.h");

// `event` as the ring holds it, but for its body's state (judged under the lock: State::append).
HeldEvent hold(FeedEvent&& event) {
  HeldEvent held;
  held.time = event.time;
  held.texts = pack_texts(event);
  held.body_size = event.your_body_size != 0 ? event.your_body_size : event.your_body.size();
  if (!event.your_body.empty()) held.body = std::make_unique<std::string>(std::move(event.your_body));
  held.etags = static_cast<std::uint8_t>((event.your_etag ? kYourEtag : 0) | (event.current_etag ? kCurrentEtag : 0) |
                                         (event.base_etag ? kBaseEtag : 0));
  return held;
}

// What leaves the ring under the lock, freed after it is released.
struct Garbage {
  std::vector<HeldEvent> events;
  std::vector<std::unique_ptr<std::string>> bodies;
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

  // Appends `held` (hold()) as the newest event, its body judged against the limits; returns its id.
  std::uint64_t append(HeldEvent&& held, Garbage& garbage) {
    if (held.body_size == 0) {
      held.body_state = FeedBody::None;
    } else if (held.body && held.body->size() == held.body_size && held.body_size <= limits.keep_body_bytes &&
               held.body_size <= limits.max_body_bytes) {
      held.body_state = FeedBody::Kept;
      ++counters.bodies_kept;
      counters.body_bytes += held.body_size;
    } else {
      held.body_state = FeedBody::TooLarge;
      ++counters.bodies_too_large;
    }
    if (held.body_state != FeedBody::Kept && held.body) garbage.bodies.push_back(std::move(held.body));
    std::string_view type = held.type();
    auto it = published.find(type);
    if (it == published.end()) it = published.emplace(std::string(type), 0).first;
    ++it->second;
    ring.push_back(std::move(held));
    const std::uint64_t id = next_id++;
    enforce(garbage);
    return id;
  }

  // Brings the ring within its limits: the oldest events, then the oldest bodies, go.
  void enforce(Garbage& garbage) {
    while (ring.size() > std::max<std::size_t>(1, limits.capacity)) {
      HeldEvent& oldest = ring.front();
      if (oldest.body_state == FeedBody::Kept) forget_body(oldest);
      garbage.events.push_back(std::move(oldest));
      ring.pop_front();
      ++counters.dropped;
    }
    no_body_before = std::max(no_body_before, first_id());
    while (counters.body_bytes > limits.max_body_bytes) {
      HeldEvent& held = *find(no_body_before);
      ++no_body_before;
      if (held.body_state != FeedBody::Kept) continue;
      forget_body(held);
      held.body_state = FeedBody::Evicted;
      ++counters.bodies_evicted;
      garbage.bodies.push_back(std::move(held.body));
    }
  }

  void forget_body(const HeldEvent& held) noexcept {
    --counters.bodies_kept;
    counters.body_bytes -= held.body_size;
  }
};

MemoryConflictFeed::MemoryConflictFeed(const FeedLimits& limits) : state_(std::make_unique<State>()) {
  state_->limits = limits;
}

MemoryConflictFeed::~MemoryConflictFeed() = default;

std::uint64_t MemoryConflictFeed::publish(FeedEvent event) {
  Garbage garbage;
  HeldEvent held = hold(std::move(event));
  std::uint64_t id;
  {
    std::lock_guard lock(state_->mutex);
    id = state_->append(std::move(held), garbage);
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
    const HeldEvent& held = state.ring[id - first];
    page.next = id;
    TextReader texts(held.texts.get());
    std::string_view type = texts.text();
    std::string_view route = texts.text();
    if (filter.matches(type, route, texts.text())) page.events.push_back(held.unpack(id, false));
  }
  return page;
}

FeedLookup MemoryConflictFeed::get(std::uint64_t id) const {
  FeedLookup lookup;
  std::lock_guard lock(state_->mutex);
  lookup.find = state_->find_state(id);
  if (lookup.find != FeedFind::Found) return lookup;
  lookup.event = state_->find(id)->unpack(id, true);
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
    HeldEvent& conflict = *state.find(id);
    if (conflict.type() != kFeedConflict) {
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
    conflict.resolved = std::make_unique<FeedResolution>(outcome.resolution);
    ++state.counters.resolved;
    TextReader texts(conflict.texts.get());
    texts.text();
    resolved_event.type = kFeedResolved;
    resolved_event.route = texts.text();
    resolved_event.resource = texts.text();
    resolved_event.your_body.clear();
    resolved_event.your_body_size = 0;
    state.append(hold(std::move(resolved_event)), garbage);  // may drop `conflict`: not used after
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
