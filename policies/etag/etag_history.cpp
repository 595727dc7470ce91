// The ETag policy's history, merge and PATCH (issue #15): versions recorded as the policy sees
// them, reads answered from the history (Accept-Datetime, RFC 7089), a stale write merged into
// the current version instead of refused, and PATCHes applied here and sent as PUTs.

#include <charconv>
#include <utility>

#include "policies/config_reader.h"  // single_quoted
#include "policies/etag/etag_exchange.h"
#include "policies/merge/json_merge.h"
#include "proxy/http/http_time.h"
#include "proxy/http/query.h"

namespace arbiter {

namespace {

constexpr std::string_view kAcceptDatetime = "Accept-Datetime";
constexpr std::string_view kMergePatchType = "application/merge-patch+json";
constexpr std::string_view kJsonPatchType = "application/json-patch+json";
constexpr std::string_view kAcceptPatch = "application/merge-patch+json, application/json-patch+json";

std::optional<std::uint64_t> fence_of(const HeaderList& headers, std::string_view field) {
  if (field.empty()) return std::nullopt;
  auto value = headers.find(field);
  if (!value) return std::nullopt;
  std::string_view text = without_ows(*value);
  std::uint64_t fence = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), fence);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return fence;
}

Decision patch_refused(std::string type, int status, std::string title, std::string detail) {
  HeaderList headers;
  if (status == 415) headers.set("Accept-Patch", kAcceptPatch);
  return Decision::reply(Problem::make(std::move(type), status, std::move(title), std::move(detail)), std::move(headers));
}

}  // namespace

// ---- Recording ----

void EtagPolicy::record_version(const RequestView& request, const std::string& resource, const Version& version,
                                std::string_view made_by) {
  if (!history_ || !version.etag || version.body == nullptr || !identity_coded(*version.headers)) return;
  const HistoryConfig& history = *config_.history;
  VersionInput input{route_name_, resource, *version.etag, *version.body,
                     version.headers->find("Content-Type").value_or(std::string_view()), wall_clock_(), std::nullopt};
  std::string client;
  if (!made_by.empty()) {
    client = request_key(request, history.client_key, history.client_header);
    input.author = VersionAuthor{made_by, request.request_id, client, fence_of(request.headers, history.fence_header)};
  }
  history_->record(input, history.limits, ignored<RecordOutcome>());
}

std::string EtagPolicy::history_link(std::string_view resource) const {
  static constexpr std::string_view kPath = "/history?resource=", kRel = ">; rel=\"version-history\"";
  const std::string& prefix = config_.control_prefix;
  std::string encoded = query_value(resource);
  std::string link;
  link.reserve(1 + prefix.size() + kPath.size() + encoded.size() + kRel.size());
  link.append("<").append(prefix).append(kPath).append(encoded).append(kRel);
  return link;
}

void EtagPolicy::add_history_fields(const RequestView& request, ResponseView& response,
                                    const Exchange& exchange) const {
  response.headers.add("Link", history_link(exchange.resource()));
  // The resource is its own TimeGate (RFC 7089 section 4.1.2): a cache must not answer an
  // Accept-Datetime request with the current representation.
  bool read = request.method == "GET" || request.method == "HEAD";
  if (read && response.status >= 200 && response.status <= 299) response.headers.add("Vary", "accept-datetime");
}

// ---- Accept-Datetime ----

Decision EtagPolicy::on_accept_datetime(const RequestView& request, std::unique_ptr<ExchangeState>& state) {
  std::string_view text = *request.headers.find(kAcceptDatetime);
  auto at = parse_http_date(text);
  if (!at) {
    return Decision::reply(Problem::make("malformed-accept-datetime", 400, "Malformed Accept-Datetime",
                                         "Accept-Datetime must be an HTTP-date such as "
                                         "'Tue, 01 Dec 2026 12:00:00 GMT'; got: " +
                                             std::string(text)));
  }
  auto* exchange = new Exchange(Exchange::Role::Read, resource_key(request));
  state.reset(exchange);
  exchange->stage = Exchange::Stage::Remembering;
  exchange->wait.start();
  // An HTTP-date names a whole second: the version current at its end.
  if (StoreCall call = history_->at_time(exchange->resource(), *at + std::chrono::milliseconds(999),
                                         Completion<VersionLookup>::to<&Exchange::on_lookup>(*exchange))) {
    return exchange->wait.park(request, std::move(call));
  }
  if (exchange->wait.failed()) return store_unavailable("the history store");
  return answer_memento(request, *exchange);
}

Decision EtagPolicy::answer_memento(const RequestView& request, Exchange& exchange) {
  exchange.stage = Exchange::Stage::Settled;
  const std::string& resource = exchange.resource();
  std::string listing = config_.control_prefix + "/history?resource=" + query_value(resource);
  VersionLookup& found = exchange.lookup;
  auto refuse = [&](std::string type, int status, std::string title, std::string detail) {
    Problem problem = Problem::make(std::move(type), status, std::move(title), std::move(detail));
    problem.extensions.emplace_back("resource", resource);
    problem.extensions.emplace_back("history", listing);
    return Decision::reply(std::move(problem), HeaderList{{"Vary", "accept-datetime"}});
  };
  std::string asked(without_ows(*request.headers.find(kAcceptDatetime)));
  if (found.find == VersionFind::Unknown) {
    return refuse("no-memento", 404, "No version at that time",
                  "Arbiter recorded no version of " + single_quoted(resource) + " at or before " + asked +
                      ": its history begins later, or there is none. Read it without Accept-Datetime for the "
                      "current version, or list the recorded ones at " + listing + ".");
  }
  if (found.find == VersionFind::Dropped) {
    return refuse("memento-dropped", 410, "Version no longer kept",
                  "The version of " + single_quoted(resource) + " current at " + asked +
                      " was dropped by the route's history retention ([route.history] keep, max_bytes). The "
                      "versions still kept are at " + listing + ".");
  }
  VersionRecord& version = found.version;
  if (!version.meta.body_kept) {
    return refuse("version-body-not-kept", 410, "Version recorded without its body",
                  "Version " + std::to_string(version.meta.number) + " of " + single_quoted(resource) +
                      " was larger than the route's max_version_bytes, so only its metadata was recorded.");
  }
  counters_.mementos.fetch_add(1, std::memory_order_relaxed);
  HeaderList headers{{"ETag", version.meta.etag},
                     {"Memento-Datetime", http_date(version.meta.time)},
                     {"Vary", "accept-datetime"},
                     {"Content-Location", listing + "&version=" + std::to_string(version.meta.number)},
                     {"Link", "<" + std::string(request.path) + ">; rel=\"original timegate\", " + history_link(resource)}};
  return Decision::respond(200, std::move(headers), std::move(version.body), version.meta.content_type);
}

// ---- PATCH applied here ----

std::optional<Decision> EtagPolicy::prepare_patch(const RequestView& request, Exchange& exchange) {
  std::string_view type = media_type_of(request.headers.find("Content-Type"));
  if (iequals(type, kMergePatchType)) {
    exchange.patch = Exchange::PatchType::MergePatch;
  } else if (iequals(type, kJsonPatchType)) {
    exchange.patch = Exchange::PatchType::JsonPatch;
  } else {
    return patch_refused("unsupported-patch-type", 415, "Unsupported patch type",
                         "This route applies PATCHes itself and takes " + std::string(kMergePatchType) +
                             " (RFC 7396) or " + std::string(kJsonPatchType) + " (RFC 6902), not " +
                             (type.empty() ? std::string("a body without Content-Type") : single_quoted(type)) +
                             "; nothing was written.");
  }
  auto patch = parse_json_document(request.body != nullptr ? std::string_view(*request.body) : std::string_view());
  if (!patch) {
    return patch_refused("malformed-patch", 400, "Malformed patch",
                         "The PATCH body is not JSON, so it cannot be applied; nothing was written.");
  }
  if (exchange.patch == Exchange::PatchType::JsonPatch && !patch->is_array()) {
    return patch_refused("malformed-patch", 400, "Malformed patch",
                         "A JSON Patch (RFC 6902) is an array of operations such as "
                         "[{\"op\": \"replace\", \"path\": \"/name\", \"value\": \"x\"}]; nothing was written.");
  }
  exchange.patch_body = std::move(*patch);
  return std::nullopt;
}

namespace {

// The document forwarded instead of the client's body, as a PUT of the whole of it.
Decision forward_document(std::string document, bool from_patch) {
  Decision decision = Decision::forward_without({std::string(kIfMatch), std::string(kIfNoneMatch), std::string(kRestoreField)})
                          .with_body(std::move(document));
  if (!from_patch) return decision;
  return std::move(decision).with_method("PUT").with_field("Content-Type", "application/json");
}

PatchOutcome patched(const nlohmann::json& document, const nlohmann::json& patch, bool merge_patch) {
  return merge_patch ? apply_merge_patch(document, patch) : apply_json_patch(document, patch);
}

}  // namespace

Decision EtagPolicy::apply_patch(Exchange& exchange) {
  const std::string& resource = exchange.resource();
  if (!exchange.have_document) {
    if (exchange.document_gone) {
      return patch_refused("nothing-to-patch", 404, "Nothing to patch",
                           single_quoted(resource) + " does not exist, so there is nothing to apply the patch to; "
                           "create it with a PUT.");
    }
    return patch_refused("unpatchable", 409, "Cannot apply the patch",
                         "The current representation of " + single_quoted(resource) +
                             " could not be read whole (larger than the route's max_body_bytes), so the patch "
                             "cannot be applied here; nothing was written.");
  }
  auto current = parse_json_document(exchange.document);
  if (!current) {
    return patch_refused("unsupported-patch-type", 415, "Not a JSON document",
                         "The current representation of " + single_quoted(resource) +
                             " is not JSON, so a JSON patch cannot be applied to it; nothing was written.");
  }
  PatchOutcome outcome = patched(*current, exchange.patch_body, exchange.patch == Exchange::PatchType::MergePatch);
  if (outcome.result == PatchOutcome::Result::TestFailed) {
    return patch_refused("patch-test-failed", 409, "Patch test failed",
                         outcome.error + "; the current version of " + single_quoted(resource) +
                             " is not what the patch expects, so nothing was written.");
  }
  if (outcome.result == PatchOutcome::Result::Malformed) {
    return patch_refused("malformed-patch", 400, "Malformed patch", outcome.error + "; nothing was written.");
  }
  counters_.patches_applied.fetch_add(1, std::memory_order_relaxed);
  counters_.writes_forwarded.fetch_add(1, std::memory_order_relaxed);
  exchange.stage = Exchange::Stage::Forwarded;
  return forward_document(outcome.document.dump(), true);
}

// ---- Merge ----

std::optional<Decision> EtagPolicy::try_merge(const RequestView& request, Exchange& exchange,
                                              const Precondition& if_match, const CurrentVersion& current) {
  bool patching = exchange.patch != Exchange::PatchType::None;
  if (config_.on_conflict != EtagPolicyConfig::OnConflict::Merge || !history_ || !current.exists || !current.etag ||
      if_match.form != Precondition::Form::Tags || !(patching || request.method == "PUT") ||
      request.headers.contains(kRestoreField)) {
    return std::nullopt;
  }
  const std::string& resource = exchange.resource();
  auto lookup = [&](std::string_view etag) -> std::optional<nlohmann::json> {
    auto found = answered_at_once<VersionLookup>(
        [&](Completion<VersionLookup> done) { return history_->find_tag(resource, etag, done); });
    if (!found || found->find != VersionFind::Found || !found->version.meta.body_kept) return std::nullopt;
    return parse_json_document(found->version.body);
  };
  // The current document: as the verify read showed it, else from the history (verify = "cache"),
  // else read now, once.
  std::optional<nlohmann::json> theirs;
  if (exchange.have_document) {
    theirs = parse_json_document(exchange.document);
  } else if (!(theirs = lookup(*current.etag)) && !exchange.fetching_document && !exchange.document_gone) {
    exchange.fetching_document = true;
    exchange.wants_document = true;
    exchange.stage = Exchange::Stage::Verifying;
    return Decision::call({read_of(std::string(request.path), config_.max_body_bytes)});
  }
  if (!theirs) return std::nullopt;
  // The base: the version the client's If-Match names, if the history has it.
  std::optional<nlohmann::json> base;
  std::string base_etag;
  for (const EntityTag& tag : if_match.tags) {
    if (tag.weak || !(base = lookup(tag.opaque_tag))) continue;
    base_etag = std::string(tag.opaque_tag);
    break;
  }
  if (!base) return std::nullopt;
  nlohmann::json yours;
  if (patching) {
    PatchOutcome outcome = patched(*base, exchange.patch_body, exchange.patch == Exchange::PatchType::MergePatch);
    if (outcome.result != PatchOutcome::Result::Applied) return std::nullopt;
    yours = std::move(outcome.document);
  } else if (auto body = parse_json_document(request.body != nullptr ? std::string_view(*request.body) : std::string_view())) {
    yours = std::move(*body);
  } else {
    return std::nullopt;
  }
  MergeOutcome merge = three_way_merge(*base, std::move(*theirs), yours, config_.merge_keys);
  if (!merge.merged) {
    counters_.merge_conflicts.fetch_add(1, std::memory_order_relaxed);
    Overlap overlap{base_etag, std::move(merge.conflicts)};
    return conflict(request, exchange, kIfMatch, if_match, current, &overlap);
  }
  counters_.merged.fetch_add(1, std::memory_order_relaxed);
  counters_.writes_forwarded.fetch_add(1, std::memory_order_relaxed);
  if (patching) counters_.patches_applied.fetch_add(1, std::memory_order_relaxed);
  exchange.merged = "merged; base=" + base_etag + "; current=" + *current.etag;
  FeedEvent event = feed_event(kFeedMerged, request, exchange);
  event.your_etag = std::string(if_match.text());
  event.current_etag = current.etag;
  event.base_etag = base_etag;
  event.conflicts = std::move(merge.applied);
  publish_event(*feed_, std::move(event));
  exchange.stage = Exchange::Stage::Forwarded;
  return forward_document(merge.document.dump(), patching);
}

}  // namespace arbiter
