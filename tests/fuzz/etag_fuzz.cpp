// libFuzzer harness: the entity-tag parsers of policies/etag/etag.h (If-Match, If-None-Match, ETag,
// minted tags, JSON pointers) and the ETag policy's request phase over them.
//
// The input is lines; the first two characters of a line say what it is:
//   m:VALUE   an If-Match field        n:VALUE   an If-None-Match field
//   e:VALUE   the backend's ETag       j:VALUE   a JSON pointer (source = "json:VALUE")
// and every other line is part of the response body, e.g.
//   m:"v1", W/"v2"
//   e:"v1"
//   {"version": 7}
// Checked besides the sanitizers (a failure traps): the parsers agree with each other
// (a parsed tag re-parses to itself; a list's "matches" is "some tag matches"; is_strong_etag is
// parse + not weak), minted tags round-trip through their digest, a tag made from a JSON value
// is a strong tag, and a write the policy forwards carries preconditions that hold.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policies/etag/etag.h"
#include "policies/etag/etag_policy.h"
#include "policies/store/memory_version_store.h"
#include "tests/fuzz/fuzz_support.h"

namespace arbiter {
namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "etag_fuzz: %s\n", what);
  __builtin_trap();
}

void check(bool ok, const char* what) {
  if (!ok) fail(what);
}

struct Input {
  HeaderList headers;
  std::vector<std::string_view> etags;
  std::vector<std::string_view> pointers;
  std::string body;
};

Input split(std::string_view data) {
  Input input;
  while (!data.empty()) {
    std::size_t end = data.find('\n');
    std::string_view line = data.substr(0, end);
    data.remove_prefix(end == std::string_view::npos ? data.size() : end + 1);
    std::string_view kind = line.substr(0, 2);
    std::string_view value = line.substr(std::min<std::size_t>(2, line.size()));
    if (kind == "m:") {
      input.headers.add("If-Match", value);
    } else if (kind == "n:") {
      input.headers.add("If-None-Match", value);
    } else if (kind == "e:") {
      input.etags.push_back(value);
    } else if (kind == "j:") {
      input.pointers.push_back(value);
    } else {
      input.body.append(line);
      input.body.push_back('\n');
    }
  }
  return input;
}

// A tag's text as it would be written again: W/ and the opaque-tag with its quotes.
std::string tag_text(const EntityTag& tag) { return (tag.weak ? "W/" : "") + std::string(tag.opaque_tag); }

void check_tag(std::string_view text) {
  auto tag = parse_entity_tag(text);
  check(is_strong_etag(text) == (tag && !tag->weak), "is_strong_etag disagrees with parse_entity_tag");
  if (!tag) return;
  check(tag->opaque_tag.size() >= 2 && tag->opaque_tag.front() == '"' && tag->opaque_tag.back() == '"',
        "an opaque-tag without its quotes");
  check(tag->opaque_tag.data() >= text.data() && tag->opaque_tag.data() + tag->opaque_tag.size() <= text.data() + text.size(),
        "a parsed tag does not view its text");
  std::string again = tag_text(*tag);
  auto reparsed = parse_entity_tag(again);
  check(reparsed && reparsed->weak == tag->weak && reparsed->opaque_tag == tag->opaque_tag, "a tag does not re-parse");
  check(weak_match(*tag, *tag) && strong_match(*tag, *tag) == !tag->weak, "a tag does not match itself");
  if (auto digest = minted_etag_digest(text)) {
    check(minted_etag_text(*digest) == text, "a minted tag does not round-trip through its digest");
  }
}

// The outcome evaluate_if_match/_none_match must give, computed from the tags directly.
PreconditionOutcome expected(const Precondition& precondition, const CurrentVersion& current, bool if_match) {
  switch (precondition.form) {
    case Precondition::Form::Absent: return PreconditionOutcome::Passes;
    case Precondition::Form::Malformed: return PreconditionOutcome::Fails;
    case Precondition::Form::Any:
      return current.exists == if_match ? PreconditionOutcome::Passes : PreconditionOutcome::Fails;
    case Precondition::Form::Tags: break;
  }
  bool matched = false;
  if (current.exists) {
    if (!current.etag) return PreconditionOutcome::Unverifiable;
    auto now = parse_entity_tag(*current.etag);
    for (const EntityTag& tag : precondition.tags) {
      matched = matched || (now && (if_match ? strong_match(tag, *now) : weak_match(tag, *now)));
    }
  }
  return matched == if_match ? PreconditionOutcome::Passes : PreconditionOutcome::Fails;
}

void check_precondition(const HeaderList& headers, std::string_view field, const std::vector<CurrentVersion>& versions) {
  Precondition precondition = parse_precondition(headers, field);
  check(precondition.present() == headers.contains(field), "a precondition present without its field");
  check((precondition.form == Precondition::Form::Tags) == !precondition.tags.empty(), "a tag list without tags");
  for (const EntityTag& tag : precondition.tags) check_tag(tag_text(tag));
  bool if_match = field == "If-Match";
  for (const CurrentVersion& current : versions) {
    PreconditionOutcome outcome = if_match ? evaluate_if_match(precondition, current)
                                           : evaluate_if_none_match(precondition, current);
    check(outcome == expected(precondition, current, if_match), "a precondition evaluates unlike its tags");
  }
}

// The ETag policy's write path over these fields, with the first strong e: line (or a minted tag)
// as what the cache knows: a write it forwards must pass both preconditions.
void check_policy(const Input& input, const std::string& current) {
  EtagPolicyConfig config;
  config.verify = EtagPolicyConfig::Verify::Cache;
  auto store = std::make_shared<MemoryVersionStore>(16);
  store->put("/r", current);
  EtagPolicy policy("fuzz", config, store);
  std::vector<PathParam> params;
  fuzz::FakeClock clock;
  for (std::string_view method : {"PUT", "GET"}) {
    RequestView request{method, "/r", "/r", {}, input.headers, "127.0.0.1", "fuzz", params, "fuzz-1", clock.now(),
                        std::make_shared<fuzz::RecordingWaker>()};
    std::unique_ptr<ExchangeState> state;
    Decision decision = policy.on_request(request, state);
    if (method != "PUT" || !decision.forwards()) continue;
    CurrentVersion version{true, current};
    check(evaluate_if_match(parse_precondition(input.headers, "If-Match"), version) == PreconditionOutcome::Passes &&
              evaluate_if_none_match(parse_precondition(input.headers, "If-None-Match"), version) ==
                  PreconditionOutcome::Passes,
          "the policy forwarded a write whose precondition fails");
  }
}

}  // namespace
}  // namespace arbiter

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace arbiter;
  Input input = split(std::string_view(reinterpret_cast<const char*>(data), size));
  std::string minted = mint_etag(input.body);
  check(is_strong_etag(minted) && minted_etag_digest(minted).has_value(), "a minted tag is not a strong minted tag");

  std::vector<CurrentVersion> versions{{false, std::nullopt}, {true, std::nullopt}, {true, minted}};
  std::string current = minted;
  for (std::string_view etag : input.etags) {
    check_tag(etag);
    versions.push_back({true, std::string(etag)});
    if (current == minted && is_strong_etag(etag)) current = std::string(parse_entity_tag(etag)->opaque_tag);
  }
  for (HeaderField field : input.headers) check_tag(field.value);
  check_precondition(input.headers, "If-Match", versions);
  check_precondition(input.headers, "If-None-Match", versions);
  check_policy(input, current);

  for (std::string_view pointer : input.pointers) {
    bool valid = is_valid_json_pointer(pointer);
    auto etag = etag_from_json_pointer(input.body, pointer);
    check(valid || !etag, "a tag from an invalid JSON pointer");
    if (etag) check(is_strong_etag(*etag), "a tag made from a JSON value is not a strong tag");
  }
  return 0;
}
