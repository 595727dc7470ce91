#include "proxy/control/lock_endpoints.h"

#include <algorithm>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "proxy/config/control_config.h"
#include "proxy/control/endpoint_support.h"
#include "proxy/http/http_time.h"
#include "proxy/http/query.h"
#include "proxy/observe/log.h"

namespace arbiter {

namespace {

constexpr std::size_t kDefaultPage = 100;
constexpr std::size_t kLargestPage = 1000;

nlohmann::ordered_json lock_json(const LockView& lock, MonotonicTime now) {
  auto left = std::max<std::int64_t>(0, std::chrono::ceil<std::chrono::seconds>(lock.expires - now).count());
  return {{"resource", lock.resource}, {"owner", lock.owner},   {"route", lock.route},
          {"fence", lock.fence},       {"timeout", lock.timeout.count()}, {"expires", rfc3339_utc(wall_time_of(lock.expires, now))},
          {"seconds_left", left},      {"waiters", lock.waiters}};
}

class LockEndpoint final : public LocalHandler {
 public:
  enum class Role { Describe, Admin };  // Admin: GET lists, DELETE breaks
  LockEndpoint(std::shared_ptr<LockStore> locks, Role role, std::shared_ptr<ConflictFeed> feed = nullptr)
      : locks_(std::move(locks)), role_(role), feed_(std::move(feed)) {}

  void handle(const LocalRequest& request, LocalResponder& responder) override {
    MonotonicTime now = MonotonicClock::now();
    if (role_ == Role::Admin && request.method != "DELETE") return list(request, responder, now);
    auto resource = resource_param(request.query, responder);
    if (!resource) return;
    if (role_ == Role::Describe) {
      with_store<std::optional<LockView>>(
          responder, "the lock store", [&](auto done) { return locks_->describe(*resource, now, done); },
          [&](std::optional<LockView> lock) {
            if (!lock) return responder.reply_problem(not_locked(*resource));
            responder.reply(200, json_fields(), lock_json(*lock, now).dump());
          });
      return;
    }
    with_store<std::optional<LockView>>(
        responder, "the lock store", [&](auto done) { return locks_->break_lock(*resource, now, done); },
        [&](std::optional<LockView> lock) {
          if (!lock) return responder.reply_problem(not_locked(*resource));
          log_line("lock broken by the admin endpoint: " + lock->resource + " (owner '" + lock->owner + "', fence " +
                   std::to_string(lock->fence) + ", route " + lock->route + ")");
          if (feed_) publish_lock_ended(*feed_, kFeedLockBroken, *lock, "admin");
          nlohmann::ordered_json body = {{"broken", lock_json(*lock, now)}};
          responder.reply(200, json_fields(), body.dump());
        });
  }

 private:
  static Problem not_locked(const std::string& resource) {
    return Problem::make("not-locked", 404, "Not locked",
                         resource + " has no lock (none was taken, or it was released or has expired).");
  }

  void list(const LocalRequest& request, LocalResponder& responder, MonotonicTime now) {
    std::string after = query_param(request.query, "after").value_or("");
    std::size_t limit = kDefaultPage;
    if (auto text = query_param(request.query, "limit")) {
      char* end = nullptr;
      unsigned long parsed = std::strtoul(text->c_str(), &end, 10);
      if (text->empty() || *end != '\0' || parsed == 0 || parsed > kLargestPage) {
        return responder.reply_problem(Problem::make("bad-limit", 400, "Bad limit",
                                                     "limit must be a whole number from 1 to " +
                                                         std::to_string(kLargestPage) + "."));
      }
      limit = parsed;
    }
    with_store<std::vector<LockView>>(
        responder, "the lock store", [&](auto done) { return locks_->list(after, limit + 1, now, done); },
        [&](std::vector<LockView> locks) {
          bool more = locks.size() > limit;
          if (more) locks.resize(limit);
          nlohmann::ordered_json items = nlohmann::ordered_json::array();
          for (const LockView& lock : locks) items.push_back(lock_json(lock, now));
          nlohmann::ordered_json body = {{"locks", std::move(items)},
                                         {"next", more ? nlohmann::ordered_json(locks.back().resource) : nullptr}};
          responder.reply(200, json_fields(), body.dump());
        });
  }

  std::shared_ptr<LockStore> locks_;
  Role role_;
  std::shared_ptr<ConflictFeed> feed_;  // Admin: where a broken lock is published
};

}  // namespace

void publish_lock_ended(ConflictFeed& feed, std::string_view type, const LockView& lock, std::string_view by) {
  FeedEvent event;
  event.type = std::string(type);
  event.time = std::chrono::system_clock::now();
  event.route = lock.route;
  event.resource = lock.resource;
  event.client = lock.client;
  nlohmann::json details = {{"owner", lock.owner}, {"fence", lock.fence}, {"timeout", lock.timeout.count()}};
  if (!by.empty()) details["by"] = by;
  event.details = details.dump();
  publish_event(feed, std::move(event));
}

void add_lock_endpoints(HandlerRegistry& control, HandlerRegistry& admin, std::shared_ptr<LockStore> locks,
                        std::shared_ptr<ConflictFeed> feed) {
  using Role = LockEndpoint::Role;
  control.add("/locks", PathMatch::Exact, {"GET"}, "the lock held on ?resource= (owner, expiry, fence, waiters)",
              std::make_shared<LockEndpoint>(locks, Role::Describe), std::string(kScopeLocks));
  admin.add("/locks", PathMatch::Exact, {"GET", "DELETE"},
            "held locks, paged (GET ?after=&limit=); break the lock on ?resource= (DELETE)",
            std::make_shared<LockEndpoint>(locks, Role::Admin, std::move(feed)));
}

}  // namespace arbiter
