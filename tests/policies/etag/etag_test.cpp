#include "policies/etag/etag.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include <xxhash.h>

namespace arbiter {
namespace {

// "W/\"a\"" for a weak tag, "\"a\"" for a strong one: what the parser saw, in wire form.
std::vector<std::string> tags_of(const Precondition& precondition) {
  std::vector<std::string> out;
  for (const EntityTag& tag : precondition.tags) {
    out.push_back((tag.weak ? "W/" : "") + std::string(tag.opaque_tag));
  }
  return out;
}

// If-Match with these field values. The tags view a HeaderList that stays valid until the
// next call, so use one result at a time.
Precondition if_match_of(std::initializer_list<std::string_view> values) {
  static HeaderList headers;
  headers.clear();
  for (std::string_view value : values) headers.add("If-Match", value);
  return parse_precondition(headers, "if-match");
}

using Strings = std::vector<std::string>;

// ---- Parsing ----

TEST(ParsePreconditionTest, AbsentWhenNoSuchField) {
  HeaderList headers{{"If-None-Match", "\"a\""}};
  Precondition precondition = parse_precondition(headers, "If-Match");
  EXPECT_EQ(precondition.form, Precondition::Form::Absent);
  EXPECT_FALSE(precondition.present());
  EXPECT_TRUE(precondition.tags.empty());
}

TEST(ParsePreconditionTest, Star) {
  Precondition precondition = if_match_of({"*"});
  EXPECT_EQ(precondition.form, Precondition::Form::Any);
  EXPECT_TRUE(precondition.present());
  EXPECT_EQ(precondition.text(), "*");
  EXPECT_EQ(if_match_of({"  *\t"}).form, Precondition::Form::Any);
}

TEST(ParsePreconditionTest, StrongAndWeakTags) {
  Precondition precondition = if_match_of({"\"abc\""});
  EXPECT_EQ(precondition.form, Precondition::Form::Tags);
  EXPECT_EQ(tags_of(precondition), Strings{"\"abc\""});
  EXPECT_FALSE(precondition.tags[0].weak);

  precondition = if_match_of({"W/\"abc\""});
  EXPECT_EQ(tags_of(precondition), Strings{"W/\"abc\""});
  EXPECT_TRUE(precondition.tags[0].weak);
  EXPECT_EQ(precondition.tags[0].opaque_tag, "\"abc\"");
}

TEST(ParsePreconditionTest, ListsAndSeveralFieldsAreOneList) {
  Precondition precondition = if_match_of({"\"a\", W/\"b\" ,\"c\"", "\"d\""});
  EXPECT_EQ(tags_of(precondition), (Strings{"\"a\"", "W/\"b\"", "\"c\"", "\"d\""}));
  EXPECT_EQ(precondition.text(), "\"a\", W/\"b\" ,\"c\", \"d\"");
}

TEST(ParsePreconditionTest, EmptyElementsAreSkipped) {
  EXPECT_EQ(tags_of(if_match_of({", \"a\",, ,\"b\","})), (Strings{"\"a\"", "\"b\""}));
}

TEST(ParsePreconditionTest, CommaInsideATagIsPartOfIt) {
  // %x2C is an etagc: a naive split on ',' would see two broken tags here.
  EXPECT_EQ(tags_of(if_match_of({"\"a,b\", \"c\""})), (Strings{"\"a,b\"", "\"c\""}));
}

TEST(ParsePreconditionTest, EmptyOpaqueTagIsATag) {
  EXPECT_EQ(tags_of(if_match_of({"\"\""})), Strings{"\"\""});
}

TEST(ParsePreconditionTest, Malformed) {
  for (std::string_view value : {"abc", "\"abc", "abc\"", "w/\"abc\"", "W/abc", "\"a\" \"b\"", "\"a\";x",
                                 "\"a b\"", "*, \"a\"", "\"a\", *", "**", "", " , ", "W/ \"a\""}) {
    Precondition precondition = if_match_of({value});
    EXPECT_EQ(precondition.form, Precondition::Form::Malformed) << value;
    EXPECT_TRUE(precondition.tags.empty()) << value;
    EXPECT_TRUE(precondition.present()) << value;
  }
}

TEST(ParsePreconditionTest, StarInOneFieldAndTagsInAnotherIsMalformed) {
  EXPECT_EQ(if_match_of({"*", "\"a\""}).form, Precondition::Form::Malformed);
  EXPECT_EQ(if_match_of({"\"a\"", "*"}).form, Precondition::Form::Malformed);
  EXPECT_EQ(if_match_of({"*", "*"}).form, Precondition::Form::Malformed);
  // One malformed field spoils the whole precondition, and its text is still all of it.
  Precondition precondition = if_match_of({"\"a\"", "junk"});
  EXPECT_EQ(precondition.form, Precondition::Form::Malformed);
  EXPECT_EQ(precondition.text(), "\"a\", junk");
}

TEST(ParseEntityTagTest, OneTagOnly) {
  auto tag = parse_entity_tag(" W/\"x\" ");
  ASSERT_TRUE(tag.has_value());
  EXPECT_TRUE(tag->weak);
  EXPECT_EQ(tag->opaque_tag, "\"x\"");
  EXPECT_FALSE(parse_entity_tag("\"x\", \"y\"").has_value());
  EXPECT_FALSE(parse_entity_tag("*").has_value());
  EXPECT_FALSE(parse_entity_tag("").has_value());
}

TEST(IsStrongEtagTest, OnlyASingleStrongTag) {
  EXPECT_TRUE(is_strong_etag("\"v1\""));
  EXPECT_TRUE(is_strong_etag("\"\""));
  EXPECT_FALSE(is_strong_etag("W/\"v1\""));
  EXPECT_FALSE(is_strong_etag("v1"));
  EXPECT_FALSE(is_strong_etag("\"a\", \"b\""));
  EXPECT_FALSE(is_strong_etag("\"a\"b"));
  EXPECT_FALSE(is_strong_etag("\"a\x01\""));
}

// ---- Comparison (RFC 9110 section 8.8.3.2's table) ----

TEST(EntityTagComparisonTest, StrongAndWeakFunctions) {
  EntityTag weak1{true, "\"1\""}, weak2{true, "\"2\""}, strong1{false, "\"1\""};
  EXPECT_FALSE(strong_match(weak1, weak1));
  EXPECT_TRUE(weak_match(weak1, weak1));
  EXPECT_FALSE(strong_match(weak1, weak2));
  EXPECT_FALSE(weak_match(weak1, weak2));
  EXPECT_FALSE(strong_match(weak1, strong1));
  EXPECT_TRUE(weak_match(weak1, strong1));
  EXPECT_TRUE(strong_match(strong1, strong1));
  EXPECT_TRUE(weak_match(strong1, strong1));
}

CurrentVersion exists_as(std::string etag) { return CurrentVersion{true, std::move(etag)}; }
const CurrentVersion kMissing{false, std::nullopt};
const CurrentVersion kTooLarge{true, std::nullopt};

TEST(EvaluateIfMatchTest, AbsentPasses) {
  EXPECT_EQ(evaluate_if_match(Precondition{}, kMissing), PreconditionOutcome::Passes);
}

TEST(EvaluateIfMatchTest, StarNeedsOnlyExistence) {
  EXPECT_EQ(evaluate_if_match(if_match_of({"*"}), exists_as("\"x\"")), PreconditionOutcome::Passes);
  EXPECT_EQ(evaluate_if_match(if_match_of({"*"}), kTooLarge), PreconditionOutcome::Passes);
  EXPECT_EQ(evaluate_if_match(if_match_of({"*"}), kMissing), PreconditionOutcome::Fails);
}

TEST(EvaluateIfMatchTest, ListPassesIfAnyTagMatchesStrongly) {
  EXPECT_EQ(evaluate_if_match(if_match_of({"\"a\", \"b\""}), exists_as("\"b\"")), PreconditionOutcome::Passes);
  EXPECT_EQ(evaluate_if_match(if_match_of({"\"a\"", "\"b\""}), exists_as("\"b\"")), PreconditionOutcome::Passes);
  EXPECT_EQ(evaluate_if_match(if_match_of({"\"a\", \"b\""}), exists_as("\"c\"")), PreconditionOutcome::Fails);
  EXPECT_EQ(evaluate_if_match(if_match_of({"\"a\""}), kMissing), PreconditionOutcome::Fails);
}

TEST(EvaluateIfMatchTest, WeakTagsNeverMatch) {
  EXPECT_EQ(evaluate_if_match(if_match_of({"W/\"a\""}), exists_as("\"a\"")), PreconditionOutcome::Fails);
  EXPECT_EQ(evaluate_if_match(if_match_of({"\"a\""}), exists_as("W/\"a\"")), PreconditionOutcome::Fails);
  EXPECT_EQ(evaluate_if_match(if_match_of({"W/\"a\", \"a\""}), exists_as("\"a\"")), PreconditionOutcome::Passes);
}

TEST(EvaluateIfMatchTest, ListAgainstAnUnknownTagIsUnverifiable) {
  EXPECT_EQ(evaluate_if_match(if_match_of({"\"a\""}), kTooLarge), PreconditionOutcome::Unverifiable);
}

TEST(EvaluateIfNoneMatchTest, StarFailsIfItExists) {
  HeaderList headers{{"If-None-Match", "*"}};
  Precondition star = parse_precondition(headers, "If-None-Match");
  EXPECT_EQ(evaluate_if_none_match(star, kMissing), PreconditionOutcome::Passes);
  EXPECT_EQ(evaluate_if_none_match(star, exists_as("\"a\"")), PreconditionOutcome::Fails);
  EXPECT_EQ(evaluate_if_none_match(star, kTooLarge), PreconditionOutcome::Fails);
}

TEST(EvaluateIfNoneMatchTest, ListUsesWeakComparison) {
  HeaderList headers{{"If-None-Match", "\"x\", W/\"a\""}};
  Precondition list = parse_precondition(headers, "If-None-Match");
  EXPECT_EQ(evaluate_if_none_match(list, exists_as("\"a\"")), PreconditionOutcome::Fails);
  EXPECT_EQ(evaluate_if_none_match(list, exists_as("\"x\"")), PreconditionOutcome::Fails);
  EXPECT_EQ(evaluate_if_none_match(list, exists_as("\"b\"")), PreconditionOutcome::Passes);
  EXPECT_EQ(evaluate_if_none_match(list, kMissing), PreconditionOutcome::Passes);
  EXPECT_EQ(evaluate_if_none_match(list, kTooLarge), PreconditionOutcome::Unverifiable);
}

// ---- Minted tags ----

TEST(MintEtagTest, QuotedLowercaseHexOfXxh3_128) {
  std::string etag = mint_etag("{\"balance\":10}");
  ASSERT_EQ(etag.size(), 34u);
  EXPECT_EQ(etag.front(), '"');
  EXPECT_EQ(etag.back(), '"');
  for (char c : etag.substr(1, 32)) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << etag;
  EXPECT_TRUE(is_strong_etag(etag));

  // The digits are the canonical (big-endian) form of the 128-bit hash: high half first.
  XXH128_hash_t hash = XXH3_128bits("{\"balance\":10}", 14);
  char expected[35];
  std::snprintf(expected, sizeof expected, "\"%016llx%016llx\"", static_cast<unsigned long long>(hash.high64),
                static_cast<unsigned long long>(hash.low64));
  EXPECT_EQ(etag, expected);
}

TEST(MintEtagTest, SameBodySameTagOtherBodyOtherTag) {
  EXPECT_EQ(mint_etag("abc"), mint_etag(std::string("abc")));
  EXPECT_NE(mint_etag("abc"), mint_etag("abd"));
  EXPECT_NE(mint_etag(""), mint_etag(" "));
}

TEST(MintedEtagDigestTest, RoundTripsMintedTags) {
  std::string etag = mint_etag("round trip");
  auto digest = minted_etag_digest(etag);
  ASSERT_TRUE(digest.has_value());
  EXPECT_EQ(minted_etag_text(*digest), etag);
}

TEST(MintedEtagDigestTest, RefusesOtherTags) {
  std::string minted = mint_etag("x");
  std::string upper = minted;
  upper[1] = 'A';  // would not round-trip to the same text
  std::string unquoted = minted.substr(1, 32);
  for (const std::string& etag : {upper, unquoted, std::string("\"7\""), "W/" + minted, minted + " ",
                                  std::string("\"") + std::string(32, 'g') + "\""}) {
    EXPECT_FALSE(minted_etag_digest(etag).has_value()) << etag;
  }
}

// ---- JSON pointer source ----

TEST(JsonPointerTest, ValidSyntax) {
  for (std::string_view pointer : {"", "/", "/version", "/meta/version", "/a~0b", "/a~1b", "/items/0"}) {
    EXPECT_TRUE(is_valid_json_pointer(pointer)) << pointer;
  }
  for (std::string_view pointer : {"version", "/a~", "/a~2", "#/a"}) {
    EXPECT_FALSE(is_valid_json_pointer(pointer)) << pointer;
  }
}

TEST(EtagFromJsonPointerTest, NumberAndStringValuesAreTheTag) {
  EXPECT_EQ(etag_from_json_pointer(R"({"version":7})", "/version"), "\"7\"");
  EXPECT_EQ(etag_from_json_pointer(R"({"meta":{"updated_at":"2024-05-01T10:00:00Z"}})", "/meta/updated_at"),
            "\"2024-05-01T10:00:00Z\"");
  EXPECT_EQ(etag_from_json_pointer(R"({"v":1.5})", "/v"), "\"1.5\"");
  EXPECT_EQ(etag_from_json_pointer(R"({"v":-3})", "/v"), "\"-3\"");
  EXPECT_EQ(etag_from_json_pointer(R"([10, 20])", "/1"), "\"20\"");
  EXPECT_EQ(etag_from_json_pointer(R"({"a/b":5})", "/a~1b"), "\"5\"");
}

TEST(EtagFromJsonPointerTest, OtherValuesAreHashed) {
  // Characters outside etagc (space, '"', non-ASCII) cannot stand in a tag as they are.
  EXPECT_EQ(etag_from_json_pointer(R"({"v":"a b"})", "/v"), mint_etag(R"("a b")"));
  EXPECT_EQ(etag_from_json_pointer(R"({"v":"say \"hi\""})", "/v"), mint_etag(R"("say \"hi\"")"));
  EXPECT_EQ(etag_from_json_pointer(R"({"v":"caf\u00e9"})", "/v"), mint_etag("\"caf\xc3\xa9\""));
  EXPECT_EQ(etag_from_json_pointer(R"({"v":{"major":1,"minor":2}})", "/v"), mint_etag(R"({"major":1,"minor":2})"));
  EXPECT_EQ(etag_from_json_pointer(R"({"v":true})", "/v"), mint_etag("true"));
  EXPECT_EQ(etag_from_json_pointer(R"({"v":null})", "/v"), mint_etag("null"));
  // Formatting of the document does not change the tag of a structured value.
  EXPECT_EQ(etag_from_json_pointer("{ \"v\" : [ 1 , 2 ] }", "/v"), etag_from_json_pointer(R"({"v":[1,2]})", "/v"));
}

TEST(EtagFromJsonPointerTest, NothingThereOrNotJson) {
  EXPECT_FALSE(etag_from_json_pointer(R"({"version":7})", "/revision").has_value());
  EXPECT_FALSE(etag_from_json_pointer(R"({"items":[1]})", "/items/5").has_value());
  EXPECT_FALSE(etag_from_json_pointer(R"({"items":[1]})", "/items/x").has_value());
  EXPECT_FALSE(etag_from_json_pointer("not json", "/version").has_value());
  EXPECT_FALSE(etag_from_json_pointer(R"({"version":7})", "version").has_value());
}

}  // namespace
}  // namespace arbiter
