#pragma once
// [control]: who may use the endpoints under [server] control_prefix, and the conflict feed's
// bounds (issue #16). Part of Config: read with the rest of the file, replaced on reload (the
// feed's ring itself lives in ResourceStores and only takes the new limits).

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "policies/config_reader.h"
#include "policies/store/conflict_feed.h"
#include "proxy/http/address.h"

namespace arbiter {

// The scopes a control token may carry; each control endpoint names the one it needs.
inline constexpr std::string_view kScopeFeed = "feed";        // the conflict feed, its records, the page
inline constexpr std::string_view kScopeResolve = "resolve";  // POST .../conflicts/{id}/resolve
inline constexpr std::string_view kScopeHistory = "history";  // version history and restore
inline constexpr std::string_view kScopeLocks = "locks";      // the lock listing
inline constexpr std::string_view kControlScopes[] = {kScopeFeed, kScopeResolve, kScopeHistory, kScopeLocks};
// Not a token scope: what an endpoint that holds no data names (the page's own files, which a
// browser must load before it can ask for a token): with tokens configured it needs none;
// without them `allow` still decides.
inline constexpr std::string_view kScopePublic = "public";

// [[control.tokens]] (or tokens = [{...}]): a bearer token, known by the SHA-256 of its text.
struct ControlToken {
  std::string name;                 // unique; what logs and `resolved` events name
  std::string sha256;               // 64 lower-case hex digits
  std::vector<std::string> scopes;  // each one of kControlScopes
};

// [[control.webhook]]: where each published event matching `events` is POSTed as JSON.
struct WebhookConfig {
  std::string url;                  // http://host:port/path (no TLS)
  std::vector<std::string> events;  // event types; empty: every type
  std::string secret;               // HMAC-SHA256 key of Arbiter-Signature; empty: unsigned
  Duration max_retry = std::chrono::minutes(10);  // give an event up after retrying this long
  std::size_t queue = 10000;        // events waiting for this target; beyond, the oldest are dropped (counted)
  Duration timeout = std::chrono::seconds(5);     // one delivery attempt, connect to answer
};

struct ControlConfig {
  // Without tokens: only clients within these reach the control endpoints (403 otherwise).
  std::vector<Cidr> allow;          // default (set by the loader): 127.0.0.0/8 and ::1/128
  // With tokens: every control endpoint needs Authorization: Bearer with the scope it names.
  std::vector<ControlToken> tokens;
  FeedLimits feed;                  // feed_buffer (capacity), keep_body_bytes, keep_bodies_total
  Duration heartbeat = std::chrono::seconds(15);  // a comment line on every idle SSE stream
  Duration retry = std::chrono::seconds(3);       // the SSE `retry:` field sent to subscribers
  std::size_t max_subscribers = 1000;             // SSE streams at once, per process (503 beyond)
  std::size_t max_subscriber_buffer = 1u << 20;   // bytes waiting for one subscriber before it is cut off
  std::vector<WebhookConfig> webhooks;
};

}  // namespace arbiter
