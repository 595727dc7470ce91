#include "proxy/control/history_endpoints.h"

#include <charconv>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "policies/etag/etag_policy.h"  // kRestoreField
#include "policies/merge/json_merge.h"
#include "proxy/config/control_config.h"
#include "proxy/control/endpoint_support.h"
#include "proxy/http/http_time.h"
#include "proxy/http/query.h"

namespace arbiter {

namespace {

// ?name=N, a version number (from 1); nullopt when absent. `bad` is set when present but not one.
std::optional<std::uint64_t> version_param(std::string_view query, std::string_view name, bool& bad) {
  auto text = query_param(query, name);
  if (!text) return std::nullopt;
  std::uint64_t number = 0;
  auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), number);
  if (error != std::errc() || end != text->data() + text->size() || number == 0) {
    bad = true;
    return std::nullopt;
  }
  return number;
}

Problem bad_version(std::string_view name) {
  return Problem::make("bad-version", 400, "Bad version number",
                       std::string(name) + " must be a version number (1, 2, ...) as the history lists them.");
}

std::string listing_of(std::string_view mount, std::string_view resource) {
  return std::string(mount) + "/history?resource=" + query_value(resource);
}

// The answer for a lookup that found no body to show; nullopt when it did (Found, body kept).
std::optional<Problem> missing(const VersionLookup& found, std::string_view resource, std::uint64_t number,
                               std::string_view listing) {
  std::string which = "Version " + std::to_string(number) + " of '" + std::string(resource) + "'";
  std::optional<Problem> problem;
  if (found.find == VersionFind::Unknown) {
    problem = Problem::make("version-not-found", 404, "No such version",
                            which + " was never recorded. The recorded versions are listed at " + std::string(listing) +
                                ".");
  } else if (found.find == VersionFind::Dropped) {
    problem = Problem::make("version-dropped", 410, "Version no longer kept",
                            which + " was dropped by the route's history retention ([route.history] keep, "
                                    "max_bytes). The versions still kept are listed at " + std::string(listing) + ".");
  } else if (!found.version.meta.body_kept) {
    problem = Problem::make("version-body-not-kept", 410, "Version recorded without its body",
                            which + " was larger than the route's max_version_bytes, so only its metadata was "
                                    "recorded.");
  }
  if (problem) {
    problem->extensions.emplace_back("resource", resource);
    problem->extensions.emplace_back("version", number);
  }
  return problem;
}

nlohmann::ordered_json version_json(const VersionMeta& meta) {
  auto or_null = [](const std::string& text) { return text.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(text); };
  return {{"version", meta.number},
          {"etag", meta.etag},
          {"time", rfc3339_utc(meta.time)},
          {"size", meta.size},
          {"content_type", or_null(meta.content_type)},
          {"body_kept", meta.body_kept},
          {"method", or_null(meta.method)},
          {"request_id", or_null(meta.request_id)},
          {"client", or_null(meta.client)},
          {"fence", meta.fence ? nlohmann::ordered_json(*meta.fence) : nlohmann::ordered_json(nullptr)}};
}

class HistoryEndpoint final : public LocalHandler {
 public:
  explicit HistoryEndpoint(std::shared_ptr<HistoryStore> history) : history_(std::move(history)) {}

  void handle(const LocalRequest& request, LocalResponder& responder) override {
    auto resource = resource_param(request.query, responder);
    if (!resource) return;
    bool bad = false;
    auto version = version_param(request.query, "version", bad);
    if (bad) return responder.reply_problem(bad_version("version"));
    auto from = version_param(request.query, "from", bad);
    if (bad) return responder.reply_problem(bad_version("from"));
    auto to = version_param(request.query, "to", bad);
    if (bad) return responder.reply_problem(bad_version("to"));
    std::string listing = listing_of(request.mount, *resource);
    if (version) return show(responder, *resource, *version, listing);
    if (from || to) {
      if (!from || !to) return responder.reply_problem(Problem::make(
                            "bad-version", 400, "Which versions?", "A diff needs both from= and to= (version numbers)."));
      return diff(responder, *resource, *from, *to, listing);
    }
    list(responder, *resource);
  }

 private:
  void list(LocalResponder& responder, const std::string& resource) {
    with_store<HistoryListing>(
        responder, "the history store", [&](auto done) { return history_->list(resource, done); },
        [&](HistoryListing listing) {
          if (!listing.known) {
            Problem problem = Problem::make("no-history", 404, "No history",
                                            "Arbiter has recorded no version of '" + resource +
                                                "'. Versions are recorded on routes with [route.history] as they are "
                                                "read and written through Arbiter.");
            problem.extensions.emplace_back("resource", resource);
            return responder.reply_problem(problem);
          }
          nlohmann::ordered_json versions = nlohmann::ordered_json::array();
          for (const VersionMeta& meta : listing.versions) versions.push_back(version_json(meta));
          nlohmann::ordered_json body = {
              {"resource", resource}, {"versions", std::move(versions)}, {"dropped", listing.dropped}};
          responder.reply(200, json_fields(), body.dump());
        });
  }

  void show(LocalResponder& responder, const std::string& resource, std::uint64_t number, const std::string& listing) {
    with_store<VersionLookup>(
        responder, "the history store", [&](auto done) { return history_->version(resource, number, done); },
        [&](VersionLookup found) {
          if (auto problem = missing(found, resource, number, listing)) return responder.reply_problem(*problem);
          const VersionMeta& meta = found.version.meta;
          HeaderList fields{{"Content-Type", meta.content_type.empty() ? "application/octet-stream" : meta.content_type},
                            {"ETag", meta.etag},
                            {"Memento-Datetime", http_date(meta.time)},
                            {"Link", "<" + resource + ">; rel=\"original\", <" + listing + ">; rel=\"version-history\""}};
          responder.reply(200, fields, found.version.body);
        });
  }

  void diff(LocalResponder& responder, const std::string& resource, std::uint64_t from, std::uint64_t to,
            const std::string& listing) {
    std::optional<nlohmann::json> documents[2];
    std::uint64_t numbers[2] = {from, to};
    for (int i = 0; i < 2; ++i) {
      bool found_body = false;  // false after an answer: a problem, or 503 from with_store
      with_store<VersionLookup>(
          responder, "the history store", [&](auto done) { return history_->version(resource, numbers[i], done); },
          [&](VersionLookup found) {
            if (auto problem = missing(found, resource, numbers[i], listing)) return responder.reply_problem(*problem);
            found_body = true;
            documents[i] = parse_json_document(found.version.body);
          });
      if (!found_body) return;
    }
    if (!documents[0] || !documents[1]) {
      Problem problem = Problem::make("not-json", 415, "Not JSON",
                                      "A diff between versions is an RFC 6902 JSON Patch, for JSON versions only: "
                                      "version " + std::to_string(documents[0] ? to : from) + " of '" + resource +
                                          "' is not JSON. Read the versions themselves with ?version=N.");
      problem.extensions.emplace_back("resource", resource);
      return responder.reply_problem(problem);
    }
    responder.reply(200, HeaderList{{"Content-Type", "application/json-patch+json"}},
                    nlohmann::json::diff(*documents[0], *documents[1]).dump());
  }

  std::shared_ptr<HistoryStore> history_;
};

class RestoreEndpoint final : public LocalHandler {
 public:
  explicit RestoreEndpoint(std::shared_ptr<HistoryStore> history) : history_(std::move(history)) {}

  void handle(const LocalRequest& request, LocalResponder& responder) override {
    auto resource = resource_param(request.query, responder);
    if (!resource) return;
    bool bad = false;
    auto number = version_param(request.query, "version", bad);
    if (!number) return responder.reply_problem(bad_version("version"));
    if (!request.headers.contains("If-Match")) {
      Problem problem = Problem::make(
          "precondition-required", 428, "Precondition required",
          "A restore writes over the current version of '" + *resource +
              "': say which one with If-Match (GET it, then send its ETag), so that a restore never undoes a change "
              "you have not seen.");
      problem.extensions.emplace_back("resource", *resource);
      return responder.reply_problem(problem);
    }
    std::string listing = listing_of(request.mount, *resource);
    with_store<VersionLookup>(
        responder, "the history store", [&](auto done) { return history_->version(*resource, *number, done); },
        [&](VersionLookup found) {
          if (auto problem = missing(found, *resource, *number, listing)) return responder.reply_problem(*problem);
          PassedOnRequest put{"PUT", *resource, {}, std::move(found.version.body)};
          put.fields.set(kRestoreField, std::to_string(*number));  // replaces the document: never merged
          if (!found.version.meta.content_type.empty()) put.fields.set("Content-Type", found.version.meta.content_type);
          responder.pass_on(std::move(put));
        });
  }

 private:
  std::shared_ptr<HistoryStore> history_;
};

}  // namespace

void add_history_endpoints(HandlerRegistry& control, std::shared_ptr<HistoryStore> history) {
  control.add("/history", PathMatch::Exact, {"GET"},
              "?resource=R: R's recorded versions; &version=N: one of them; &from=A&to=B: a JSON Patch between two",
              std::make_shared<HistoryEndpoint>(history), std::string(kScopeHistory));
  control.add("/history/restore", PathMatch::Exact, {"POST"},
              "?resource=R&version=N with If-Match: writes version N back (a PUT through R's route)",
              std::make_shared<RestoreEndpoint>(history), std::string(kScopeResolve));
}

}  // namespace arbiter
