#include "policies/store/conflict_feed.h"

#include <algorithm>

namespace arbiter {

bool FeedFilter::matches(std::string_view type, std::string_view event_route, std::string_view event_resource) const {
  if (!route.empty() && event_route != route) return false;
  if (!resource.empty()) {
    if (resource.back() == '*') {
      if (!event_resource.starts_with(std::string_view(resource).substr(0, resource.size() - 1))) return false;
    } else if (event_resource != resource) {
      return false;
    }
  }
  return types.empty() || std::find(types.begin(), types.end(), type) != types.end();
}

std::optional<std::uint64_t> publish_event(ConflictFeed& feed, FeedEvent event) {
  std::optional<std::uint64_t> id;
  auto keep = [&](StoreResult<std::uint64_t>&& result) {
    if (result.ok()) id = result.value;
  };
  StoreCall pending = feed.publish(std::move(event), Completion<std::uint64_t>(keep));
  return id;  // a pending call dropped here drops only its completion (policies/store/store_call.h)
}

namespace {

// One watch() call's listener. `mutex` serialises its calls and its unsubscribing.
struct Listener {
  std::mutex mutex;
  bool active = true;           // guarded by mutex; false once the handle is destroyed
  std::uint64_t given = 0;      // guarded by mutex: the newest id it was called with
  FeedListener call;            // guarded by mutex; empty once inactive
};

using ListenerList = std::vector<std::shared_ptr<Listener>>;

}  // namespace

// The listeners, as a list replaced whole on every watch and unsubscribe (rare), so that
// notify() holds the registry's mutex only to copy one pointer.
struct FeedWatchers::Registry {
  mutable std::mutex mutex;
  std::shared_ptr<const ListenerList> listeners = std::make_shared<const ListenerList>();  // guarded by mutex

  std::shared_ptr<const ListenerList> snapshot() const {
    std::lock_guard lock(mutex);
    return listeners;
  }
};

namespace {

class ListenerHandle final : public FeedWatch {
 public:
  ListenerHandle(std::shared_ptr<FeedWatchers::Registry> registry, std::shared_ptr<Listener> listener)
      : registry_(std::move(registry)), listener_(std::move(listener)) {}

  ~ListenerHandle() override {
    {
      std::lock_guard lock(registry_->mutex);
      auto rest = std::make_shared<ListenerList>();
      rest->reserve(registry_->listeners->size());
      for (const auto& listener : *registry_->listeners)
        if (listener != listener_) rest->push_back(listener);
      registry_->listeners = std::move(rest);
    }
    FeedListener call;  // destroyed after the lock: its captures are the caller's
    std::lock_guard lock(listener_->mutex);
    listener_->active = false;
    call = std::move(listener_->call);
  }

 private:
  std::shared_ptr<FeedWatchers::Registry> registry_;
  std::shared_ptr<Listener> listener_;
};

}  // namespace

FeedWatchers::FeedWatchers() : registry_(std::make_shared<Registry>()) {}

FeedWatchers::~FeedWatchers() = default;

FeedWatchHandle FeedWatchers::watch(FeedListener listener_call) {
  auto listener = std::make_shared<Listener>();
  listener->call = std::move(listener_call);
  {
    std::lock_guard lock(registry_->mutex);
    auto more = std::make_shared<ListenerList>(*registry_->listeners);
    more->push_back(listener);
    registry_->listeners = std::move(more);
  }
  return std::make_unique<ListenerHandle>(registry_, std::move(listener));
}

void FeedWatchers::notify(std::uint64_t newest_id) const {
  std::shared_ptr<const ListenerList> listeners = registry_->snapshot();
  for (const auto& listener : *listeners) {
    std::lock_guard lock(listener->mutex);
    if (!listener->active || newest_id <= listener->given) continue;
    listener->given = newest_id;
    listener->call(newest_id);
  }
}

std::size_t FeedWatchers::count() const { return registry_->snapshot()->size(); }

}  // namespace arbiter
