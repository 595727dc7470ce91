#pragma once
// Entity-tags (RFC 9110 section 8.8.3) and the conditional fields that carry them
// (If-Match, If-None-Match: section 13.1): parsing, the two comparison functions, and the
// tags Arbiter makes itself. Pure functions, no state.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/headers.h"

namespace arbiter {

struct EntityTag {
  bool weak = false;
  std::string_view opaque_tag;  // with its double quotes, e.g. "\"v7\""
};

// Strong comparison: both strong and the same opaque-tag. Used for If-Match, so that a weak
// tag (equivalent content, maybe not the same bytes) can never authorize a write.
bool strong_match(const EntityTag& a, const EntityTag& b) noexcept;
// Weak comparison: the same opaque-tag, weakness ignored. Used for If-None-Match.
bool weak_match(const EntityTag& a, const EntityTag& b) noexcept;

// One entity-tag, the whole of `text` (surrounding spaces and tabs ignored); nullopt when it
// is anything else. The result views `text`.
std::optional<EntityTag> parse_entity_tag(std::string_view text) noexcept;
// A single strong entity-tag, e.g. "\"abc\"" (not W/"abc", not a list).
bool is_strong_etag(std::string_view value) noexcept;

// An If-Match or If-None-Match precondition, gathered from every field of that name.
struct Precondition {
  enum class Form : std::uint8_t {
    Absent,     // no such field
    Any,        // "*"
    Tags,       // a list of entity-tags
    Malformed,  // not "*" nor a list of entity-tags (also "*" mixed with tags): answer 400
  };
  Form form = Form::Absent;
  std::vector<EntityTag> tags;  // Form::Tags; views into the HeaderList parsed

  bool present() const noexcept { return form != Form::Absent; }
  // The field values as sent, joined by ", " (for messages).
  std::string_view text() const noexcept { return joined.empty() ? single : joined; }

  // Behind text(): the one field's value (a view into the HeaderList), or the values of several
  // fields joined, built only then.
  std::string_view single;
  std::string joined;
};

// The fields named `field_name` in `headers`. Entity-tags may contain commas, so this is a
// real tokenizer, not a split on ','. The tags view `headers`: do not change it while the
// result is in use.
Precondition parse_precondition(const HeaderList& headers, std::string_view field_name);

// The state of a resource a precondition is checked against.
struct CurrentVersion {
  bool exists = false;
  // The strong ETag of the current representation; nullopt when it exists but could not be
  // versioned (its body is larger than Arbiter hashes).
  std::optional<std::string> etag;
  // Other tags naming the same version (other representations of it: another content coding,
  // the backend's tag beside Arbiter's); a list matches when one of its tags matches any.
  std::vector<std::string> also;
};

enum class PreconditionOutcome : std::uint8_t {
  Passes,
  Fails,
  Unverifiable,  // the answer depends on an ETag that is not known (CurrentVersion::etag empty)
};

// RFC 9110 section 13.1.1: "*" passes if the resource exists; a list passes if one of its
// tags strongly matches the current ETag. Absent passes.
PreconditionOutcome evaluate_if_match(const Precondition& if_match, const CurrentVersion& current);
// RFC 9110 section 13.1.2: "*" fails if the resource exists; a list fails if one of its tags
// weakly matches the current ETag. Absent passes.
PreconditionOutcome evaluate_if_none_match(const Precondition& if_none_match, const CurrentVersion& current);

// The ETags Arbiter mints: '"' + the 32 lowercase hex digits of the XXH3-128 of the body + '"'.
using MintedDigest = std::array<std::uint8_t, 16>;
std::string mint_etag(std::string_view body);
std::string minted_etag_text(const MintedDigest& digest);
// The digest of a tag in the minted form (any tag that looks like one, whoever made it);
// nullopt for every other tag. Lets a store keep 16 bytes instead of 34 characters.
std::optional<MintedDigest> minted_etag_digest(std::string_view etag) noexcept;

// The content identity of a representation: the minted tag of its content with the content
// coding removed, so that the gzip and the identity representations of one version share it.
// Decodes gzip, x-gzip and deflate (up to max_decoded_bytes); identity or no Content-Encoding
// is the body itself. nullopt for another coding, a corrupt or a too large body.
std::optional<std::string> content_identity(std::string_view body, std::string_view content_encoding,
                                            std::size_t max_decoded_bytes);

// Every tag that names one version of a resource, as the ETag table keeps it: the tags handed
// out for its representations (newest first) and its content identity (content_identity(), or
// empty when no body was seen). Two observations are of the same version when their
// identities are equal or they share a tag: a strong tag names one sequence of bytes.
struct VersionTags {
  std::string identity;           // empty: unknown
  std::vector<std::string> tags;  // never identity itself; at most kMaxTags

  static constexpr std::size_t kMaxTags = 8;

  bool empty() const noexcept { return identity.empty() && tags.empty(); }
  bool names(std::string_view etag) const noexcept;
  bool same_version(const VersionTags& other) const noexcept;
  // Adds other's tags in front (the newest), and its identity when this one has none.
  void merge(const VersionTags& other);
  // The tag to show for the version: the newest handed out, else the identity.
  const std::string& primary() const noexcept;
  // Every tag, primary first, for CurrentVersion::also.
  std::vector<std::string> all() const;
};

// The text the VersionStore keeps: a single tag when the version has one name (so Arbiter's
// minted tags stay 16 bytes inline), else "#" + identity + " " + tags separated by spaces
// (spaces cannot occur in an entity-tag).
std::string encode_version_tags(const VersionTags& version);
VersionTags decode_version_tags(std::string_view stored);
// decode_version_tags(stored).names(etag), without decoding (nothing allocated): what a read
// asks of the table for every response.
bool stored_version_names(std::string_view stored, std::string_view etag) noexcept;

// RFC 6901 syntax: "" or "/"-separated tokens where '~' is only followed by '0' or '1'.
bool is_valid_json_pointer(std::string_view pointer) noexcept;
// The strong ETag of the value at `pointer` in the JSON `body`: the value itself as the
// opaque-tag when it is a string or number made only of etagc characters (%x21 / %x23-7E),
// so {"version":7} with "/version" gives "\"7\""; otherwise the minted tag of the value's
// JSON text. nullopt when the body is not JSON or has nothing at the pointer.
std::optional<std::string> etag_from_json_pointer(std::string_view body, std::string_view pointer);

}  // namespace arbiter
