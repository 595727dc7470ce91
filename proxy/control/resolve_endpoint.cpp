#include "proxy/control/resolve_endpoint.h"

#include <charconv>
#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "policies/etag/etag_policy.h"  // kRestoreField
#include "proxy/config/control_config.h"
#include "proxy/control/endpoint_support.h"
#include "proxy/control/feed_json.h"

namespace arbiter {

namespace {

constexpr std::string_view kConflictsPath = "/conflicts/";
constexpr std::string_view kResolveSuffix = "/resolve";

// The {id} of "/conflicts/{id}/resolve" (relative to the mount); nullopt for any other path.
std::optional<std::uint64_t> conflict_id_of(std::string_view path) {
  if (!path.starts_with(kConflictsPath) || !path.ends_with(kResolveSuffix)) return std::nullopt;
  std::string_view digits = path.substr(kConflictsPath.size(), path.size() - kConflictsPath.size() - kResolveSuffix.size());
  std::uint64_t id = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
  if (digits.empty() || error != std::errc() || end != digits.data() + digits.size() || id == 0) return std::nullopt;
  return id;
}

struct Choice {
  std::string take;               // "yours", "theirs" or "document"
  std::optional<std::string> document;  // "document": its JSON text
};

Problem bad_body(std::string detail) {
  return Problem::make("bad-resolve-body", 400, "Malformed resolve request",
                       std::move(detail) + R"( Send {"take": "yours"}, {"take": "theirs"} or {"take": "document", )"
                                           R"("document": {...}} as application/json.)");
}

std::optional<Choice> choice_of(std::string_view body, LocalResponder& responder) {
  nlohmann::json json = nlohmann::json::parse(body, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    responder.reply_problem(bad_body("The body is not a JSON object."));
    return std::nullopt;
  }
  auto take = json.find("take");
  if (take == json.end() || !take->is_string() ||
      (*take != "yours" && *take != "theirs" && *take != "document")) {
    responder.reply_problem(bad_body(R"("take" must be "yours", "theirs" or "document".)"));
    return std::nullopt;
  }
  Choice choice{take->get<std::string>(), std::nullopt};
  auto document = json.find("document");
  if (choice.take == "document") {
    if (document == json.end()) {
      responder.reply_problem(bad_body(R"("take": "document" needs the "document" to write.)"));
      return std::nullopt;
    }
    choice.document = document->dump();
  } else if (document != json.end()) {
    responder.reply_problem(bad_body(R"("document" goes only with "take": "document".)"));
    return std::nullopt;
  }
  return choice;
}

Problem already_resolved(std::uint64_t id, const FeedResolution& by) {
  auto problem = Problem::make("already-resolved", 409, "Already resolved",
                               "Conflict " + std::to_string(id) + " was resolved by " + by.by + " at " +
                                   rfc3339_utc_ms(by.time) + " (took " + by.choice + "). GET the resource for its "
                                   "current version.");
  problem.extensions.emplace_back("resolved", feed_resolution_json(by));
  return problem;
}

class ResolveEndpoint final : public LocalHandler {
 public:
  explicit ResolveEndpoint(std::shared_ptr<ConflictFeed> feed) : feed_(std::move(feed)) {}

  void handle(const LocalRequest& request, LocalResponder& responder) override {
    auto id = conflict_id_of(request.path.substr(request.mount.size()));
    if (!id) {
      return responder.reply_problem(Problem::make(
          "not-found", 404, "Not found",
          "POST " + std::string(request.mount) + "/conflicts/{id}/resolve settles conflict {id}; " +
              std::string(request.path) + " is not such a path."));
    }
    auto choice = choice_of(request.body, responder);
    if (!choice) return;
    std::optional<std::string_view> if_match = request.headers.find("If-Match");
    if (!if_match && choice->take != "theirs") {
      return responder.reply_problem(Problem::make(
          "precondition-required", 428, "Precondition required",
          "Send If-Match with the resource's current ETag, so that what you choose is written only over the "
          "version you saw (GET the conflict's record or the resource for it)."));
    }
    std::string by = request.principal.empty() ? std::string("anonymous") : std::string(request.principal);
    with_store<FeedLookup>(
        responder, "the conflict feed", [&](auto done) { return feed_->get(*id, done); },
        [&](FeedLookup found) { settle(request, responder, *id, std::move(found), *choice, std::move(by)); });
  }

 private:
  void settle(const LocalRequest& request, LocalResponder& responder, std::uint64_t id, FeedLookup found,
              const Choice& choice, std::string by) {
    if (found.find == FeedFind::Unknown) {
      return responder.reply_problem(Problem::make("conflict-not-found", 404, "No such conflict",
                                                   "The conflict feed never had an event " + std::to_string(id) + "."));
    }
    if (found.find == FeedFind::Dropped) {
      return responder.reply_problem(Problem::make(
          "conflict-gone", 410, "Conflict dropped",
          "Event " + std::to_string(id) + " has left the conflict feed's ring ([control] feed_buffer); GET the "
          "resource and write it as usual."));
    }
    FeedEvent& event = found.event;
    if (event.type != kFeedConflict) {
      return responder.reply_problem(Problem::make("not-a-conflict", 400, "Not a conflict",
                                                   "Event " + std::to_string(id) + " is a '" + event.type +
                                                       "' event; only 'conflict' events are resolved."));
    }
    if (event.resolved) return responder.reply_problem(already_resolved(id, *event.resolved));
    FeedResolution resolution{std::move(by), choice.take, std::nullopt, std::chrono::system_clock::now(), 0};
    if (choice.take == "theirs") {
      with_store<ResolveOutcome>(
          responder, "the conflict feed",
          [&](auto done) { return feed_->resolve(id, resolution, resolved_event(id, request, resolution), done); },
          [&](ResolveOutcome outcome) {
            if (outcome.result != ResolveResult::Resolved) return responder.reply_problem(already_resolved(id, outcome.resolution));
            nlohmann::json body = {{"conflict", id},
                                   {"resolved", feed_resolution_json(outcome.resolution)}};
            responder.reply(200, json_fields(), body.dump());
          });
      return;
    }
    PassedOnRequest write;
    if (choice.take == "yours") {
      if (event.body == FeedBody::TooLarge || event.body == FeedBody::Evicted) {
        return responder.reply_problem(Problem::make(
            "body-not-kept", 409, "Your body was not kept",
            "The refused write's body was " +
                std::string(event.body == FeedBody::TooLarge ? "larger than [control] keep_body_bytes"
                                                             : "dropped to make room for newer ones") +
                ", so it cannot be written again from here: resolve with {\"take\": \"document\", \"document\": ...}."));
      }
      write.method = method_literal(event.method);
      write.body = std::move(event.your_body);
      if (!event.your_content_type.empty()) write.fields.set("Content-Type", event.your_content_type);
    } else {
      write.method = "PUT";
      write.body = *choice.document;
      write.fields.set("Content-Type", "application/json");
    }
    write.target = event.resource;
    write.fields.set(kRestoreField, "resolve");  // the chosen document replaces the current one: never merged
    write.on_answer = [feed = feed_, id, resolution, event = resolved_event(id, request, resolution)](
                          int status, HeaderList& fields) mutable {
      if (status < 200 || status > 299) return;
      if (auto etag = fields.find("ETag")) resolution.new_etag = std::string(*etag);
      resolution.time = event.time = std::chrono::system_clock::now();
      event.details = resolved_details(id, resolution);
      std::optional<ResolveOutcome> outcome;
      auto keep = [&](StoreResult<ResolveOutcome>&& result) {
        if (result.ok()) outcome = std::move(result.value);
      };
      StoreCall pending = feed->resolve(id, resolution, std::move(event), Completion<ResolveOutcome>(keep));
      if (outcome && outcome->result == ResolveResult::Resolved) {
        fields.set("Arbiter-Resolved", std::to_string(id) + "; event=" + std::to_string(outcome->resolution.event_id));
      }
    };
    responder.pass_on(std::move(write));
  }

  // The `resolved` event's own part (the store adds the conflict's route and resource): which
  // conflict, who settled it, how, and the new ETag, as its details.
  static FeedEvent resolved_event(std::uint64_t id, const LocalRequest& request, const FeedResolution& resolution) {
    FeedEvent event;
    event.time = resolution.time;
    event.request_id = std::string(request.request_id);
    event.client = std::string(request.principal);
    event.method = std::string(request.method);
    event.details = resolved_details(id, resolution);
    return event;
  }
  static std::string resolved_details(std::uint64_t id, const FeedResolution& resolution) {
    nlohmann::json details = {{"conflict", id}, {"by", resolution.by}, {"choice", resolution.choice}};
    details["etag"] = resolution.new_etag ? nlohmann::json(*resolution.new_etag) : nlohmann::json(nullptr);
    return details.dump();
  }

  // PassedOnRequest::method is a view: the literal for a method a refused write had.
  static std::string_view method_literal(std::string_view method) {
    for (std::string_view known : {"PUT", "PATCH", "POST", "DELETE"}) {
      if (method == known) return known;
    }
    return "PUT";
  }

  std::shared_ptr<ConflictFeed> feed_;
};

}  // namespace

void add_resolve_endpoint(HandlerRegistry& control, std::shared_ptr<ConflictFeed> feed) {
  control.add("/conflicts/", PathMatch::Prefix, {"POST"},
              "POST /conflicts/{id}/resolve with If-Match and {\"take\": \"yours\"|\"theirs\"|\"document\"}: settles a "
              "conflict",
              std::make_shared<ResolveEndpoint>(std::move(feed)), std::string(kScopeResolve), kMaxResolveBody);
}

}  // namespace arbiter
