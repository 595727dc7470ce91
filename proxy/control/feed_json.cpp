#include "proxy/control/feed_json.h"

#include <cstdio>

#include "proxy/http/http_time.h"

namespace arbiter {

std::string rfc3339_utc_ms(WallTime at) {
  std::string seconds = rfc3339_utc(at);  // "...:37Z"
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count() % 1000;
  if (millis < 0) millis += 1000;
  char fraction[8];
  std::snprintf(fraction, sizeof fraction, ".%03dZ", static_cast<int>(millis));
  seconds.pop_back();
  return seconds + fraction;
}

namespace {

const char* body_state(FeedBody body) {
  switch (body) {
    case FeedBody::Kept: return "kept";
    case FeedBody::TooLarge: return "too-large";
    case FeedBody::Evicted: return "evicted";
    case FeedBody::None: break;
  }
  return nullptr;
}

}  // namespace

nlohmann::json feed_resolution_json(const FeedResolution& resolution) {
  nlohmann::json json = {{"by", resolution.by},
                         {"choice", resolution.choice},
                         {"time", rfc3339_utc_ms(resolution.time)},
                         {"event_id", resolution.event_id}};
  json["etag"] = resolution.new_etag ? nlohmann::json(*resolution.new_etag) : nlohmann::json(nullptr);
  return json;
}

nlohmann::json feed_event_json(const FeedEvent& event) {
  nlohmann::json json = {{"id", event.id},         {"type", event.type},
                         {"time", rfc3339_utc_ms(event.time)},
                         {"route", event.route},   {"resource", event.resource},
                         {"request_id", event.request_id}, {"client", event.client}};
  if (!event.method.empty()) json["method"] = event.method;
  if (event.your_etag) json["your_etag"] = *event.your_etag;
  if (event.current_etag) {
    json["current_etag"] = *event.current_etag;
  } else if (event.type == kFeedConflict) {
    json["current_etag"] = nullptr;
  }
  if (event.base_etag) json["base_etag"] = *event.base_etag;
  if (!event.conflicts.empty()) json["conflicts"] = event.conflicts;
  if (const char* state = body_state(event.body)) {
    json["body"] = state;
    json["your_body_size"] = event.your_body_size;
    if (!event.your_content_type.empty()) json["your_content_type"] = event.your_content_type;
  }
  if (event.resolved) json["resolved"] = feed_resolution_json(*event.resolved);
  if (!event.details.empty()) {
    nlohmann::json details = nlohmann::json::parse(event.details, nullptr, false);
    if (details.is_object()) {
      for (auto& [key, value] : details.items()) {
        if (!json.contains(key)) json[key] = value;
      }
    }
  }
  return json;
}

}  // namespace arbiter
