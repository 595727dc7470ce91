#include "proxy/control/conflict_endpoints.h"

#include <charconv>
#include <optional>
#include <string>
#include <utility>

#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include "policies/merge/json_merge.h"
#include "proxy/config/control_config.h"
#include "proxy/control/endpoint_support.h"
#include "proxy/control/feed_json.h"
#include "proxy/control/feed_protocol.h"

namespace arbiter {

namespace {

bool json_media_type(std::string_view content_type) {
  std::string_view media = media_type_of(content_type);
  return iequals(media, "application/json") ||
         (media.size() > 5 && iequals(media.substr(media.size() - 5), "+json"));
}

// RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    auto byte = static_cast<unsigned char>(text[i]);
    std::size_t length = byte < 0x80 ? 1 : (byte >> 5) == 0x6 ? 2 : (byte >> 4) == 0xE ? 3 : (byte >> 3) == 0x1E ? 4 : 0;
    if (length == 0 || i + length > text.size()) return false;
    std::uint32_t point = length == 1 ? byte : byte & (0x7F >> length);
    for (std::size_t k = 1; k < length; ++k) {
      auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      point = (point << 6) | (next & 0x3F);
    }
    static constexpr std::uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (point < kSmallest[length] || point > 0x10FFFF || (point >= 0xD800 && point <= 0xDFFF)) return false;
    i += length;
  }
  return true;
}

std::string base64(std::string_view bytes) {
  std::string text(4 * ((bytes.size() + 2) / 3), '\0');
  int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(text.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  text.resize(static_cast<std::size_t>(written));
  return text;
}

// {"content_type", "body"} (+ "encoding": "base64"), as conflict_endpoints.h describes; the parsed
// document in `document` when it is JSON.
nlohmann::json body_json(std::string_view content_type, std::string_view body, std::optional<nlohmann::json>& document) {
  nlohmann::json shown = {{"content_type", content_type.empty() ? nlohmann::json(nullptr) : nlohmann::json(content_type)}};
  if (json_media_type(content_type)) document = parse_json_document(body);
  if (document) {
    shown["body"] = *document;
  } else if (valid_utf8(body)) {
    shown["body"] = body;
  } else {
    shown["body"] = base64(body);
    shown["encoding"] = "base64";
  }
  return shown;
}

class ConflictFeedEndpoint final : public LocalHandler {
 public:
  ConflictFeedEndpoint(std::shared_ptr<ConflictFeed> feed, FeedSubscribers& subscribers)
      : feed_(std::move(feed)), subscribers_(subscribers) {}

  void handle(const LocalRequest& request, LocalResponder& responder) override {
    FeedFilterParse filter = parse_feed_filter(request.query);
    if (filter.error) return responder.reply_problem(filter.error->problem);
    if (accepts_event_stream(request.headers)) {
      FeedResumeParse resume = parse_feed_resume(request.headers, request.query);
      if (resume.error) return responder.reply_problem(resume.error->problem);
      return subscribers_.subscribe(FeedSubscription{std::move(filter.filter), resume.after}, responder);
    }
    FeedPollParams poll = parse_feed_poll(request.query);
    if (poll.error) return responder.reply_problem(poll.error->problem);
    with_store<FeedPage>(
        responder, "the conflict feed",
        [&](auto done) { return feed_->read(poll.since, filter.filter, poll.limit, done); },
        [&](FeedPage page) {
          nlohmann::json events = nlohmann::json::array();
          for (const FeedEvent& event : page.events) events.push_back(feed_event_json(event));
          nlohmann::json body = {{"events", std::move(events)}, {"next", page.next}};
          if (page.reset) body["reset"] = true;
          responder.reply(200, json_fields(), body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        });
  }

 private:
  std::shared_ptr<ConflictFeed> feed_;
  FeedSubscribers& subscribers_;
};

class ConflictRecordEndpoint final : public LocalHandler {
 public:
  ConflictRecordEndpoint(std::shared_ptr<ConflictFeed> feed, std::shared_ptr<HistoryStore> history)
      : feed_(std::move(feed)), history_(std::move(history)) {}

  void handle(const LocalRequest& request, LocalResponder& responder) override {
    std::string_view below = request.path.substr(request.mount.size() + kRecordsPath.size());
    std::uint64_t id = 0;
    auto [end, error] = std::from_chars(below.data(), below.data() + below.size(), id);
    if (below.empty() || error != std::errc() || end != below.data() + below.size() || id == 0) {
      return responder.reply_problem(Problem::make(
          "not-found", 404, "Not found",
          "No conflict feed endpoint " + std::string(request.path) + ": a record is " + std::string(request.mount) +
              "/conflicts/{id}, with the id of an event (1, 2, ...)."));
    }
    with_store<FeedLookup>(
        responder, "the conflict feed", [&](auto done) { return feed_->get(id, done); },
        [&](FeedLookup found) {
          if (found.find != FeedFind::Found) return responder.reply_problem(missing(found.find, id, request.mount));
          record(responder, found.event);
        });
  }

  static constexpr std::string_view kRecordsPath = "/conflicts/";

 private:
  static Problem missing(FeedFind find, std::uint64_t id, std::string_view mount) {
    std::string which = "Event " + std::to_string(id);
    std::string listing = std::string(mount) + "/conflicts";
    Problem problem =
        find == FeedFind::Dropped
            ? Problem::make("event-dropped", 410, "Event no longer kept",
                            which + " was dropped from the conflict feed's ring ([control] feed_buffer keeps the "
                                    "newest). The events still kept are listed at " + listing + ".")
            : Problem::make("event-not-found", 404, "No such event",
                            which + " was never published. The events are listed at " + listing + ".");
    problem.extensions.emplace_back("id", id);
    return problem;
  }

  // The version of `resource` tagged `etag`, when the history has its body (nullopt otherwise, or
  // when the store did not answer at once).
  std::optional<VersionRecord> version_of(const std::string& resource, const std::optional<std::string>& etag) {
    if (!etag || !history_) return std::nullopt;
    std::optional<StoreResult<VersionLookup>> result;
    auto keep = [&](StoreResult<VersionLookup>&& lookup) { result = std::move(lookup); };
    {
      StoreCall call = history_->find_tag(resource, *etag, Completion<VersionLookup>(keep));
    }
    if (!result || !result->ok() || result->value.find != VersionFind::Found ||
        !result->value.version.meta.body_kept) {
      return std::nullopt;
    }
    return std::move(result->value.version);
  }

  void record(LocalResponder& responder, const FeedEvent& event) {
    nlohmann::json body = feed_event_json(event);
    std::optional<nlohmann::json> yours, current, base;
    if (event.body == FeedBody::Kept) body["yours"] = body_json(event.your_content_type, event.your_body, yours);
    auto show = [&](const char* name, const std::optional<VersionRecord>& version, std::optional<nlohmann::json>& document) {
      if (!version) return;
      nlohmann::json shown = body_json(version->meta.content_type, version->body, document);
      shown["version"] = version->meta.number;
      shown["etag"] = version->meta.etag;
      body[name] = std::move(shown);
    };
    show("current", version_of(event.resource, event.current_etag), current);
    // A merge names its base; a refused write was based on the version its If-Match named.
    show("base", version_of(event.resource, event.base_etag ? event.base_etag : event.your_etag), base);
    if (base && (current || yours)) {
      nlohmann::json diff = nlohmann::json::object();
      if (current) diff["base_to_current"] = nlohmann::json::diff(*base, *current);
      if (yours) diff["base_to_yours"] = nlohmann::json::diff(*base, *yours);
      body["diff"] = std::move(diff);
    }
    responder.reply(200, json_fields(), body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }

  std::shared_ptr<ConflictFeed> feed_;
  std::shared_ptr<HistoryStore> history_;
};

}  // namespace

void add_conflict_endpoints(HandlerRegistry& control, std::shared_ptr<ConflictFeed> feed,
                            std::shared_ptr<HistoryStore> history, FeedSubscribers& subscribers) {
  control.add("/conflicts", PathMatch::Exact, {"GET"},
              "the conflict feed: Server-Sent Events with Accept: text/event-stream, else JSON (?since=&limit=); "
              "filters ?resource=&route=&type=",
              std::make_shared<ConflictFeedEndpoint>(feed, subscribers), std::string(kScopeFeed));
  control.add(std::string(ConflictRecordEndpoint::kRecordsPath), PathMatch::Prefix, {"GET"},
              "/conflicts/{id}: an event's record, with the bodies and diffs the history has",
              std::make_shared<ConflictRecordEndpoint>(std::move(feed), std::move(history)), std::string(kScopeFeed));
}

}  // namespace arbiter
