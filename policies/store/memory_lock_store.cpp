#include "policies/store/memory_lock_store.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>

#include <xxhash.h>

#include "policies/store/sharding.h"
#include "proxy/http/hex.h"

namespace arbiter {

// ---- tokens

LockToken LockToken::random() {
  LockToken token;
  arc4random_buf(token.bytes.data(), token.bytes.size());  // the kernel's entropy, via ChaCha20
  token.bytes[6] = static_cast<std::uint8_t>((token.bytes[6] & 0x0f) | 0x40);  // version 4
  token.bytes[8] = static_cast<std::uint8_t>((token.bytes[8] & 0x3f) | 0x80);  // RFC 9562 variant
  return token;
}

namespace {

constexpr std::string_view kUrnPrefix = "urn:uuid:";
constexpr std::array<std::size_t, 4> kDashes = {8, 13, 18, 23};

}  // namespace

std::optional<LockToken> LockToken::parse(std::string_view uri) noexcept {
  if (uri.size() != kUrnPrefix.size() + 36) return std::nullopt;
  for (std::size_t i = 0; i < kUrnPrefix.size(); ++i) {
    char c = uri[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    if (c != kUrnPrefix[i]) return std::nullopt;
  }
  std::string_view uuid = uri.substr(kUrnPrefix.size());
  LockToken token;
  std::size_t byte = 0;
  for (std::size_t i = 0; i < uuid.size();) {
    if (std::find(kDashes.begin(), kDashes.end(), i) != kDashes.end()) {
      if (uuid[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    int high = hex_digit_value(uuid[i]), low = hex_digit_value(uuid[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    token.bytes[byte++] = static_cast<std::uint8_t>(high << 4 | low);
    i += 2;
  }
  return token;
}

std::string LockToken::text() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(kUrnPrefix);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 0x0f]);
  }
  return out;
}

std::string_view lock_end_name(LockEnd end) noexcept {
  switch (end) {
    case LockEnd::Released: return "released";
    case LockEnd::Expired: return "expired";
    case LockEnd::Broken: return "broken";
    case LockEnd::Dropped: return "dropped";
  }
  return "ended";
}

// ---- the table

namespace {

struct StringHash {
  using is_transparent = void;
  std::uint64_t seed = 0;
  std::size_t operator()(std::string_view key) const noexcept {
    return static_cast<std::size_t>(XXH3_64bits_withSeed(key.data(), key.size(), seed));
  }
};

// A lock that ended: its token, its resource's hash, how.
struct EndedToken {
  LockToken token;
  std::uint64_t resource = 0;
  LockEnd how = LockEnd::Expired;
};

}  // namespace

struct MemoryLockStore::Entry {
  // The lock, while fence != 0. 96 bytes: the client key and the owner label share one string
  // (on the heap only when together longer than its small-string buffer), the route is an id.
  LockToken token;
  std::uint64_t fence = 0;
  MonotonicTime expires{};
  std::uint32_t timeout_s = 0;    // the lease granted, seconds
  std::uint32_t waiters = 0;      // places in the queue
  std::uint32_t route = 0;        // MemoryLockStore::route_id of the route it was taken through
  std::uint32_t client_size = 0;  // labels = client key, then owner
  std::string labels;
  // The queue, first to last (places are owned by their requests).
  Place* first = nullptr;
  Place* last = nullptr;

  bool locked() const noexcept { return fence != 0; }
  std::string_view client() const noexcept { return std::string_view(labels).substr(0, client_size); }
  std::string_view owner() const noexcept { return std::string_view(labels).substr(client_size); }
};

struct MemoryLockStore::Shard {
  mutable std::mutex mutex;
  std::unordered_map<std::string, Entry, StringHash, std::equal_to<>> entries;
  std::vector<EndedToken> ended;  // a ring of kEndedPerShard, grown on first use
  std::size_t ended_next = 0;
};

class MemoryLockStore::Place final : public LockPlace {
 public:
  Place(MemoryLockStore& store, Shard& shard, std::string resource, std::shared_ptr<Waker> waker)
      : store_(store), shard_(shard), resource_(std::move(resource)), waker_(std::move(waker)) {}
  ~Place() override { store_.leave(*this); }

  MemoryLockStore& store_;
  Shard& shard_;
  std::string resource_;
  std::shared_ptr<Waker> waker_;
  Place* previous = nullptr;
  Place* next = nullptr;
  bool queued = true;  // false once it went on (granted or admitted) and left the queue
};

// Wakers to call once every lock is released.
struct MemoryLockStore::Wakes {
  std::vector<std::shared_ptr<Waker>> wakers;
  const Place* asking = nullptr;  // the place of the request asking now: it goes on without a wake
  void add(Place* place) {
    if (place != nullptr && place != asking && place->waker_) wakers.push_back(place->waker_);
  }
  ~Wakes() {
    for (const auto& waker : wakers) waker->wake();
  }
};

namespace {

void unlink(auto& entry, auto& place) {
  (place.previous ? place.previous->next : entry.first) = place.next;
  (place.next ? place.next->previous : entry.last) = place.previous;
  place.previous = place.next = nullptr;
  place.queued = false;
  --entry.waiters;
}

}  // namespace

MemoryLockStore::MemoryLockStore() : seed_(random_hash_seed()), shards_(std::make_unique<Shard[]>(kShards)) {
  for (std::size_t i = 0; i < kShards; ++i) shards_[i].entries = decltype(Shard::entries)(0, StringHash{seed_});
}

MemoryLockStore::~MemoryLockStore() = default;

LockView MemoryLockStore::view_of(std::string_view resource, const Entry& entry) const {
  LockView view;
  view.resource = std::string(resource);
  view.waiters = entry.waiters;
  if (entry.locked()) {
    view.owner = std::string(entry.owner());
    view.route = route_name(entry.route);
    view.client = std::string(entry.client());
    view.fence = entry.fence;
    view.timeout = std::chrono::seconds(entry.timeout_s);
    view.expires = entry.expires;
  }
  return view;
}

std::uint32_t MemoryLockStore::route_id(std::string_view route) {
  std::lock_guard lock(counts_mutex_);
  auto it = route_ids_.find(route);
  if (it != route_ids_.end()) return it->second;
  auto id = static_cast<std::uint32_t>(routes_.size());
  routes_.push_back(Route{std::string(route), {}});
  route_ids_.emplace(std::string(route), id);
  return id;
}

std::optional<std::uint32_t> MemoryLockStore::known_route(std::string_view route) const {
  std::lock_guard lock(counts_mutex_);
  auto it = route_ids_.find(route);
  if (it == route_ids_.end()) return std::nullopt;
  return it->second;
}

std::string MemoryLockStore::route_name(std::uint32_t id) const {
  std::lock_guard lock(counts_mutex_);
  return routes_[id].name;
}

MemoryLockStore::Shard& MemoryLockStore::shard_of(std::string_view resource) const {
  return shards_[resource_id(resource) % kShards];
}

std::uint64_t MemoryLockStore::resource_id(std::string_view resource) const noexcept {
  return XXH3_64bits_withSeed(resource.data(), resource.size(), seed_ ^ 0x9e3779b97f4a7c15ULL);
}

void MemoryLockStore::expire_if_due(Shard& shard, std::string_view resource, Entry& entry, MonotonicTime now,
                                    Wakes& wakes) {
  if (entry.locked() && entry.expires <= now) end_lock(shard, resource, entry, LockEnd::Expired, wakes);
}

void MemoryLockStore::end_lock(Shard& shard, std::string_view resource, Entry& entry, LockEnd how, Wakes& wakes) {
  if (how == LockEnd::Expired) {
    LockView view = view_of(resource, entry);
    std::lock_guard lock(expired_mutex_);
    if (expired_.size() == kMaxUnreportedExpiries) expired_.pop_front();
    expired_.push_back(std::move(view));
  }
  EndedToken ended{entry.token, resource_id(resource), how};
  if (shard.ended.size() < kEndedPerShard) {
    shard.ended.push_back(ended);
  } else {
    shard.ended[shard.ended_next] = ended;
  }
  shard.ended_next = (shard.ended_next + 1) % kEndedPerShard;
  {
    std::lock_guard lock(counts_mutex_);
    uncount_client_locked(entry.client());
    ++routes_[entry.route].ended[static_cast<std::size_t>(how)];
  }
  entry.fence = 0;
  entry.token = {};
  entry.timeout_s = 0;
  std::string().swap(entry.labels);
  entry.client_size = 0;
  locks_.fetch_sub(1, std::memory_order_relaxed);
  wakes.add(entry.first);  // the first in line may go on now
}

std::optional<LockEnd> MemoryLockStore::ended_token(const Shard& shard, std::string_view resource,
                                                    const LockToken& token) const {
  std::uint64_t id = resource_id(resource);
  // Newest first: a token ends once, but a ring slot may be reused.
  std::size_t count = shard.ended.size();
  for (std::size_t n = 0; n < count; ++n) {
    const EndedToken& ended = shard.ended[(shard.ended_next + count - 1 - n) % count];
    if (ended.token == token && ended.resource == id) return ended.how;
  }
  return std::nullopt;
}

void MemoryLockStore::erase_if_idle(Shard& shard, std::string_view resource) {
  auto it = shard.entries.find(resource);
  if (it != shard.entries.end() && !it->second.locked() && it->second.first == nullptr) shard.entries.erase(it);
}

void MemoryLockStore::uncount_client_locked(std::string_view client) {
  auto it = clients_.find(client);
  if (it != clients_.end() && --it->second == 0) clients_.erase(it);
}

bool MemoryLockStore::reserve(std::string_view client, std::size_t max_locks, std::size_t max_per_client,
                              LockAnswer::Outcome& refused) {
  std::size_t held = locks_.load(std::memory_order_relaxed);
  do {
    if (held >= max_locks) {
      refused = LockAnswer::Outcome::TableFull;
      return false;
    }
  } while (!locks_.compare_exchange_weak(held, held + 1, std::memory_order_relaxed));
  std::lock_guard lock(counts_mutex_);
  auto it = clients_.find(client);
  if (max_per_client > 0 && it != clients_.end() && it->second >= max_per_client) {
    locks_.fetch_sub(1, std::memory_order_relaxed);
    refused = LockAnswer::Outcome::ClientFull;
    return false;
  }
  if (it == clients_.end()) it = clients_.emplace(std::string(client), 0).first;
  ++it->second;
  return true;
}

std::vector<LockView> MemoryLockStore::take_expired_now(MonotonicTime now) {
  if (locks_.load(std::memory_order_relaxed) > 0) sweep(now);
  std::lock_guard lock(expired_mutex_);
  std::vector<LockView> taken(std::make_move_iterator(expired_.begin()), std::make_move_iterator(expired_.end()));
  expired_.clear();
  return taken;
}

void MemoryLockStore::sweep(MonotonicTime now) {
  for (std::size_t i = 0; i < kShards; ++i) {
    Wakes wakes;
    std::lock_guard lock(shards_[i].mutex);
    for (auto it = shards_[i].entries.begin(); it != shards_[i].entries.end();) {
      expire_if_due(shards_[i], it->first, it->second, now, wakes);
      if (!it->second.locked() && it->second.first == nullptr) {
        it = shards_[i].entries.erase(it);
      } else {
        ++it;
      }
    }
  }
}

void MemoryLockStore::leave(Place& place) {
  Wakes wakes;
  std::lock_guard lock(place.shard_.mutex);
  if (!place.queued) return;
  auto it = place.shard_.entries.find(place.resource_);
  if (it == place.shard_.entries.end()) return;
  Entry& entry = it->second;
  bool was_first = entry.first == &place;
  unlink(entry, place);
  // The next in line goes on if the lock is free (it may have been waiting behind this one only).
  if (was_first && !entry.locked()) wakes.add(entry.first);
  erase_if_idle(place.shard_, place.resource_);
}

LockAnswer MemoryLockStore::ask_now(const LockAsk& ask) {
  for (int attempt = 0;; ++attempt) {
    LockAnswer answer;
    bool recount = false;
    {
      Wakes wakes;
      Shard& shard = shard_of(ask.resource);
      std::lock_guard lock(shard.mutex);
      auto it = shard.entries.find(ask.resource);
      if (it == shard.entries.end()) it = shard.entries.emplace(std::string(ask.resource), Entry{}).first;
      Entry& entry = it->second;
      auto* place = static_cast<Place*>(ask.place);
      // A place of another resource (a caller's mistake) is not this queue's.
      bool queued_here = place != nullptr && place->queued && &place->shard_ == &shard && place->resource_ == ask.resource;
      if (queued_here) wakes.asking = place;
      expire_if_due(shard, ask.resource, entry, ask.now, wakes);

      if (ask.kind == LockAsk::Kind::Write) {
        answer.tokens.reserve(ask.tokens.size());
        bool holder_submitted = false;
        for (const LockToken& token : ask.tokens) {
          if (entry.locked() && token == entry.token) {
            holder_submitted = true;
            answer.tokens.push_back(TokenState::Current);
          } else if (auto how = ended_token(shard, ask.resource, token)) {
            if (std::find(answer.tokens.begin(), answer.tokens.end(), TokenState::Ended) == answer.tokens.end()) {
              answer.ended = *how;
            }
            answer.tokens.push_back(TokenState::Ended);
          } else {
            answer.tokens.push_back(TokenState::Unknown);
          }
        }
        if (holder_submitted) {
          answer.outcome = LockAnswer::Outcome::Admitted;
          answer.fence = entry.fence;
          if (queued_here) unlink(entry, *place);
          erase_if_idle(shard, ask.resource);
          return answer;
        }
      }

      bool free_for_this = !entry.locked() && (entry.first == nullptr || (queued_here && entry.first == place));
      if (!free_for_this) {
        answer.holder = view_of(ask.resource, entry);
        if (queued_here) {
          answer.outcome = LockAnswer::Outcome::Queued;
        } else if (!ask.queue) {
          answer.outcome = LockAnswer::Outcome::Locked;
        } else if (entry.waiters >= ask.max_waiters) {
          answer.outcome = LockAnswer::Outcome::QueueFull;
        } else {
          auto joined = std::make_unique<Place>(*this, shard, std::string(ask.resource), ask.waker);
          joined->previous = entry.last;
          (entry.last ? entry.last->next : entry.first) = joined.get();
          entry.last = joined.get();
          ++entry.waiters;
          answer.holder.waiters = entry.waiters;
          answer.place = std::move(joined);
          answer.outcome = LockAnswer::Outcome::Queued;
        }
        erase_if_idle(shard, ask.resource);
        return answer;
      }

      if (ask.kind == LockAsk::Kind::Write) {
        answer.outcome = LockAnswer::Outcome::Admitted;
        if (queued_here) {
          unlink(entry, *place);
          wakes.add(entry.first);  // a write holds nothing: the next in line may go on too
        }
        erase_if_idle(shard, ask.resource);
        return answer;
      }

      // A LOCK on a free resource, first in line.
      LockAnswer::Outcome refused = LockAnswer::Outcome::TableFull;
      if (!reserve(ask.client, ask.max_locks, ask.max_locks_per_client, refused)) {
        if (attempt == 0) {
          recount = true;  // expired locks may still count: sweep, then ask again
        } else {
          answer.outcome = refused;
          answer.holder = view_of(ask.resource, entry);
          erase_if_idle(shard, ask.resource);
          return answer;
        }
      } else {
        entry.token = LockToken::random();
        entry.fence = next_fence_.fetch_add(1, std::memory_order_relaxed);
        entry.timeout_s = static_cast<std::uint32_t>(ask.timeout.count());
        entry.expires = ask.now + ask.timeout;
        entry.route = route_id(ask.route);
        entry.client_size = static_cast<std::uint32_t>(ask.client.size());
        entry.labels.reserve(ask.client.size() + ask.owner.size());
        entry.labels.assign(ask.client).append(ask.owner);
        if (queued_here) unlink(entry, *place);
        answer.outcome = LockAnswer::Outcome::Granted;
        answer.token = entry.token;
        answer.fence = entry.fence;
        answer.timeout = ask.timeout;
        answer.expires = entry.expires;
        answer.holder = view_of(ask.resource, entry);
        return answer;
      }
    }
    if (recount) sweep(ask.now);
  }
}

LockChange MemoryLockStore::change(std::string_view resource, const LockToken& token, MonotonicTime now,
                                   const std::function<void(Shard&, Entry&, Wakes&)>& apply) {
  LockChange change;
  Wakes wakes;
  Shard& shard = shard_of(resource);
  std::lock_guard lock(shard.mutex);
  auto it = shard.entries.find(resource);
  if (it != shard.entries.end()) {
    expire_if_due(shard, resource, it->second, now, wakes);
    if (it->second.locked() && it->second.token == token) {
      change.outcome = LockChange::Outcome::Done;
      change.view = view_of(resource, it->second);
      apply(shard, it->second, wakes);
      erase_if_idle(shard, resource);
      return change;
    }
    erase_if_idle(shard, resource);
  }
  if (auto how = ended_token(shard, resource, token)) {
    change.outcome = LockChange::Outcome::Ended;
    change.ended = *how;
  }
  return change;
}

LockChange MemoryLockStore::refresh_now(std::string_view resource, const LockToken& token,
                                        std::chrono::seconds timeout, MonotonicTime now) {
  LockChange result = change(resource, token, now, [&](Shard&, Entry& entry, Wakes&) {
    entry.timeout_s = static_cast<std::uint32_t>(timeout.count());
    entry.expires = now + timeout;
  });
  if (result.outcome == LockChange::Outcome::Done) {
    result.view.timeout = timeout;
    result.view.expires = now + timeout;
  }
  return result;
}

LockChange MemoryLockStore::unlock_now(std::string_view resource, const LockToken& token, MonotonicTime now) {
  return change(resource, token, now, [&](Shard& shard, Entry& entry, Wakes& wakes) {
    end_lock(shard, resource, entry, LockEnd::Released, wakes);
  });
}

std::optional<LockView> MemoryLockStore::describe_now(std::string_view resource, MonotonicTime now) {
  return held_lock(resource, now, std::nullopt);
}

std::vector<LockView> MemoryLockStore::list_now(std::string_view after, std::size_t limit, MonotonicTime now) {
  sweep(now);
  std::vector<LockView> views;
  for (std::size_t i = 0; i < kShards; ++i) {
    std::lock_guard lock(shards_[i].mutex);
    for (const auto& [resource, entry] : shards_[i].entries) {
      if (entry.locked() && entry.expires > now && (after.empty() || std::string_view(resource) > after)) {
        views.push_back(view_of(resource, entry));
      }
    }
  }
  std::sort(views.begin(), views.end(), [](const LockView& a, const LockView& b) { return a.resource < b.resource; });
  if (views.size() > limit) views.resize(limit);
  return views;
}

std::optional<LockView> MemoryLockStore::break_now(std::string_view resource, MonotonicTime now) {
  return held_lock(resource, now, LockEnd::Broken);
}

std::optional<LockView> MemoryLockStore::held_lock(std::string_view resource, MonotonicTime now,
                                                   std::optional<LockEnd> end) {
  Wakes wakes;
  Shard& shard = shard_of(resource);
  std::lock_guard lock(shard.mutex);
  auto it = shard.entries.find(resource);
  if (it == shard.entries.end()) return std::nullopt;
  expire_if_due(shard, resource, it->second, now, wakes);
  std::optional<LockView> view;
  if (it->second.locked()) {
    view = view_of(resource, it->second);
    if (end) end_lock(shard, resource, it->second, *end, wakes);
  }
  erase_if_idle(shard, resource);
  return view;
}

std::size_t MemoryLockStore::keep_routes_now(std::span<const std::string> routes, MonotonicTime now) {
  std::vector<std::uint32_t> kept;
  for (const std::string& route : routes) {
    if (auto id = known_route(route)) kept.push_back(*id);
  }
  std::size_t dropped = 0;
  for (std::size_t i = 0; i < kShards; ++i) {
    Wakes wakes;
    std::lock_guard lock(shards_[i].mutex);
    for (auto it = shards_[i].entries.begin(); it != shards_[i].entries.end();) {
      Entry& entry = it->second;
      expire_if_due(shards_[i], it->first, entry, now, wakes);
      if (entry.locked() && std::find(kept.begin(), kept.end(), entry.route) == kept.end()) {
        end_lock(shards_[i], it->first, entry, LockEnd::Dropped, wakes);
        ++dropped;
      }
      if (!entry.locked() && entry.first == nullptr) {
        it = shards_[i].entries.erase(it);
      } else {
        ++it;
      }
    }
  }
  return dropped;
}

std::size_t MemoryLockStore::held(std::string_view route, MonotonicTime now) const {
  auto id = known_route(route);
  if (!id) return 0;
  return sum_over_shards(shards_.get(), kShards, [&](const Shard& shard) {
    return static_cast<std::size_t>(std::count_if(shard.entries.begin(), shard.entries.end(), [&](const auto& item) {
      return item.second.locked() && item.second.expires > now && item.second.route == *id;
    }));
  });
}

std::uint64_t MemoryLockStore::ended(std::string_view route, LockEnd how) const {
  std::lock_guard lock(counts_mutex_);
  auto it = route_ids_.find(route);
  return it == route_ids_.end() ? 0 : routes_[it->second].ended[static_cast<std::size_t>(how)];
}

std::size_t MemoryLockStore::size(MonotonicTime now) const {
  return sum_over_shards(shards_.get(), kShards, [&](const Shard& shard) {
    return static_cast<std::size_t>(std::count_if(shard.entries.begin(), shard.entries.end(), [&](const auto& item) {
      return item.second.locked() && item.second.expires > now;
    }));
  });
}

std::size_t MemoryLockStore::approximate_bytes_per_lock() noexcept {
  static_assert(sizeof(void*) != 8 || sizeof(std::string) != 32 || sizeof(Entry) <= 96,
                "the README's bytes per held lock grow with the entry");
  // The node (its key, its entry, the next pointer; no cached hash: the hasher is noexcept),
  // malloc's header rounded up, and the bucket array at the table's lowest load after growth
  // (one bucket a node), plus one client count node of its own, the worst case.
  std::size_t node = sizeof(void*) + sizeof(std::string) + sizeof(Entry);
  std::size_t malloced = (node + 16 + 15) / 16 * 16;
  std::size_t client = (sizeof(void*) + sizeof(std::string) + sizeof(std::size_t) + 16 + 15) / 16 * 16;
  return malloced + sizeof(void*) + client + sizeof(void*);
}

}  // namespace arbiter
