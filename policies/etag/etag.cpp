#include "policies/etag/etag.h"

#include <algorithm>

#include <nlohmann/json.hpp>
#include <xxhash.h>
#include <zlib.h>

namespace arbiter {

namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

// RFC 9110 section 8.8.3: etagc = %x21 / %x23-7E / obs-text.
bool is_etagc(unsigned char c) noexcept { return c == 0x21 || (c >= 0x23 && c <= 0x7E) || c >= 0x80; }

// The subset Arbiter itself writes into a tag: visible ASCII, no obs-text, so a tag it makes
// from a JSON value is always plain ASCII on the wire.
bool is_ascii_etagc(unsigned char c) noexcept { return c == 0x21 || (c >= 0x23 && c <= 0x7E); }

bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

std::size_t skip_ows(std::string_view text, std::size_t i) noexcept {
  while (i < text.size() && is_ows(text[i])) ++i;
  return i;
}

// An entity-tag starting at text[i]; on success `i` is just past its closing quote.
std::optional<EntityTag> take_entity_tag(std::string_view text, std::size_t& i) noexcept {
  EntityTag tag;
  std::size_t start = i;
  if (text.substr(i, 2) == "W/") {
    tag.weak = true;
    start += 2;
  }
  if (start >= text.size() || text[start] != '"') return std::nullopt;
  std::size_t end = start + 1;
  while (end < text.size() && text[end] != '"') {
    if (!is_etagc(static_cast<unsigned char>(text[end]))) return std::nullopt;
    ++end;
  }
  if (end >= text.size()) return std::nullopt;  // no closing quote
  tag.opaque_tag = text.substr(start, end - start + 1);
  i = end + 1;
  return tag;
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case is not the minted form: it would not round-trip
}

// One field value of If-Match / If-None-Match into `out`; false when malformed.
bool parse_field_value(std::string_view value, Precondition& out) {
  std::size_t i = 0;
  bool any_element = false;
  while (true) {
    // Empty list elements (",,") are allowed (RFC 9110 section 5.6.1).
    while (i < value.size() && (is_ows(value[i]) || value[i] == ',')) ++i;
    if (i >= value.size()) break;
    if (value[i] == '*') {
      if (any_element || out.form != Precondition::Form::Absent) return false;
      i = skip_ows(value, i + 1);
      if (i != value.size()) return false;  // "*" stands alone
      out.form = Precondition::Form::Any;
      return true;
    }
    if (out.form == Precondition::Form::Any) return false;
    auto tag = take_entity_tag(value, i);
    if (!tag) return false;
    out.tags.push_back(*tag);
    any_element = true;
    i = skip_ows(value, i);
    if (i < value.size() && value[i] != ',') return false;
  }
  if (!any_element) return false;  // an empty value: most likely a client with no tag to send
  out.form = Precondition::Form::Tags;
  return true;
}

// Both preconditions ask one question, "does it match the current representation?" ("*":
// does one exist), and differ in the comparison and in which answer lets the request pass.
PreconditionOutcome evaluate(const Precondition& precondition, const CurrentVersion& current,
                             bool (*compare)(const EntityTag&, const EntityTag&) noexcept, bool passes_when_matched) {
  bool matched = false;
  switch (precondition.form) {
    case Precondition::Form::Absent:
      return PreconditionOutcome::Passes;
    case Precondition::Form::Malformed:
      return PreconditionOutcome::Fails;
    case Precondition::Form::Any:
      matched = current.exists;
      break;
    case Precondition::Form::Tags: {
      if (!current.exists) break;
      if (!current.etag && current.also.empty()) return PreconditionOutcome::Unverifiable;
      auto matches = [&](const std::string& current_text) {
        auto current_tag = parse_entity_tag(current_text);
        return current_tag && std::any_of(precondition.tags.begin(), precondition.tags.end(),
                                          [&](const EntityTag& tag) { return compare(tag, *current_tag); });
      };
      matched = (current.etag && matches(*current.etag)) ||
                std::any_of(current.also.begin(), current.also.end(), matches);
      break;
    }
  }
  return matched == passes_when_matched ? PreconditionOutcome::Passes : PreconditionOutcome::Fails;
}

}  // namespace

bool strong_match(const EntityTag& a, const EntityTag& b) noexcept {
  return !a.weak && !b.weak && a.opaque_tag == b.opaque_tag;
}

bool weak_match(const EntityTag& a, const EntityTag& b) noexcept { return a.opaque_tag == b.opaque_tag; }

std::optional<EntityTag> parse_entity_tag(std::string_view text) noexcept {
  std::size_t i = skip_ows(text, 0);
  auto tag = take_entity_tag(text, i);
  if (!tag || skip_ows(text, i) != text.size()) return std::nullopt;
  return tag;
}

bool is_strong_etag(std::string_view value) noexcept {
  auto tag = parse_entity_tag(value);
  return tag && !tag->weak;
}

Precondition parse_precondition(const HeaderList& headers, std::string_view field_name) {
  Precondition result;
  for (HeaderField field : headers) {
    if (!iequals(field.name, field_name)) continue;
    if (result.text().empty()) {
      result.single = field.value;
    } else {
      if (result.joined.empty()) result.joined = result.single;
      result.joined += ", ";
      result.joined.append(field.value);
    }
    if (result.form == Precondition::Form::Malformed) continue;
    if (!parse_field_value(field.value, result)) {
      result.form = Precondition::Form::Malformed;
      result.tags.clear();
    }
  }
  return result;
}

PreconditionOutcome evaluate_if_match(const Precondition& if_match, const CurrentVersion& current) {
  return evaluate(if_match, current, strong_match, /*passes_when_matched=*/true);
}

PreconditionOutcome evaluate_if_none_match(const Precondition& if_none_match, const CurrentVersion& current) {
  return evaluate(if_none_match, current, weak_match, /*passes_when_matched=*/false);
}

std::string minted_etag_text(const MintedDigest& digest) {
  std::string out(2 + 2 * digest.size(), '"');
  for (std::size_t i = 0; i < digest.size(); ++i) {
    out[1 + 2 * i] = kHexDigits[digest[i] >> 4];
    out[2 + 2 * i] = kHexDigits[digest[i] & 0x0F];
  }
  return out;
}

std::string mint_etag(std::string_view body) {
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits(body.data(), body.size()));
  MintedDigest digest;
  static_assert(sizeof canonical.digest == std::tuple_size_v<MintedDigest>);
  std::copy(std::begin(canonical.digest), std::end(canonical.digest), digest.begin());
  return minted_etag_text(digest);
}

std::optional<MintedDigest> minted_etag_digest(std::string_view etag) noexcept {
  constexpr std::size_t kLength = 2 + 2 * std::tuple_size_v<MintedDigest>;
  if (etag.size() != kLength || etag.front() != '"' || etag.back() != '"') return std::nullopt;
  MintedDigest digest;
  for (std::size_t i = 0; i < digest.size(); ++i) {
    int high = hex_value(etag[1 + 2 * i]);
    int low = hex_value(etag[2 + 2 * i]);
    if (high < 0 || low < 0) return std::nullopt;
    digest[i] = static_cast<std::uint8_t>(high << 4 | low);
  }
  return digest;
}

namespace {

// The body with its content coding removed; nullopt when corrupt or over max_bytes.
std::optional<std::string> inflate_body(std::string_view body, bool raw_deflate, std::size_t max_bytes) {
  z_stream stream{};
  // 15 + 32: zlib or gzip header, detected; -15: a raw deflate stream (what some servers send
  // for "deflate").
  if (inflateInit2(&stream, raw_deflate ? -15 : 15 + 32) != Z_OK) return std::nullopt;
  std::string out;
  char buffer[16384];
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  stream.avail_in = static_cast<uInt>(body.size());
  int result = Z_OK;
  while (result == Z_OK) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof buffer;
    result = inflate(&stream, Z_NO_FLUSH);
    if (result != Z_OK && result != Z_STREAM_END) break;
    out.append(buffer, sizeof buffer - stream.avail_out);
    if (out.size() > max_bytes) result = Z_MEM_ERROR;
    if (result == Z_OK && stream.avail_in == 0 && stream.avail_out != 0) result = Z_BUF_ERROR;  // truncated
  }
  inflateEnd(&stream);
  if (result != Z_STREAM_END) return std::nullopt;
  return out;
}

}  // namespace

std::optional<std::string> content_identity(std::string_view body, std::string_view content_encoding,
                                            std::size_t max_decoded_bytes) {
  std::vector<std::string_view> codings;
  for_each_list_element(content_encoding, [&](std::string_view coding) {
    if (!iequals(coding, "identity")) codings.push_back(coding);
  });
  if (codings.empty()) return mint_etag(body);
  if (codings.size() != 1 || body.size() > 0xFFFFFFFFu) return std::nullopt;
  std::optional<std::string> decoded;
  if (iequals(codings[0], "gzip") || iequals(codings[0], "x-gzip")) {
    decoded = inflate_body(body, false, max_decoded_bytes);
  } else if (iequals(codings[0], "deflate")) {
    decoded = inflate_body(body, false, max_decoded_bytes);
    if (!decoded) decoded = inflate_body(body, true, max_decoded_bytes);
  }
  if (!decoded) return std::nullopt;
  return mint_etag(*decoded);
}

bool VersionTags::names(std::string_view etag) const noexcept {
  return (!identity.empty() && identity == etag) || std::find(tags.begin(), tags.end(), etag) != tags.end();
}

bool VersionTags::same_version(const VersionTags& other) const noexcept {
  if (!other.identity.empty() && names(other.identity)) return true;
  return std::any_of(other.tags.begin(), other.tags.end(), [&](const std::string& tag) { return names(tag); });
}

void VersionTags::merge(const VersionTags& other) {
  // The newer observation's identity wins (a content hash rather than a backend tag read back
  // from the table); the one it displaces stays a name of the version.
  std::string displaced;
  if (!other.identity.empty() && other.identity != identity) {
    displaced = std::move(identity);
    identity = other.identity;
  }
  std::vector<std::string> merged;
  auto add = [&](const std::string& tag) {
    if (tag.empty() || tag == identity || merged.size() == kMaxTags) return;
    if (std::find(merged.begin(), merged.end(), tag) == merged.end()) merged.push_back(tag);
  };
  for (const std::string& tag : other.tags) add(tag);
  add(displaced);
  for (const std::string& tag : tags) add(tag);
  tags = std::move(merged);
}

const std::string& VersionTags::primary() const noexcept { return tags.empty() ? identity : tags.front(); }

std::vector<std::string> VersionTags::all() const {
  std::vector<std::string> out = tags;
  if (!identity.empty()) out.push_back(identity);
  return out;
}

std::string encode_version_tags(const VersionTags& version) {
  if (version.tags.empty()) return version.identity;
  if (version.identity.empty() && version.tags.size() == 1) return version.tags.front();
  std::string out = "#" + version.identity;
  for (const std::string& tag : version.tags) out += " " + tag;
  return out;
}

VersionTags decode_version_tags(std::string_view stored) {
  VersionTags version;
  if (stored.empty() || stored.front() != '#') {
    version.identity = std::string(stored);
    return version;
  }
  stored.remove_prefix(1);
  std::size_t space = stored.find(' ');
  version.identity = std::string(stored.substr(0, space));
  while (space != std::string_view::npos) {
    stored.remove_prefix(space + 1);
    space = stored.find(' ');
    std::string_view tag = stored.substr(0, space);
    if (!tag.empty()) version.tags.emplace_back(tag);
  }
  return version;
}

bool stored_version_names(std::string_view stored, std::string_view etag) noexcept {
  if (etag.empty()) return false;
  if (stored.empty() || stored.front() != '#') return stored == etag;
  stored.remove_prefix(1);
  while (true) {
    std::size_t space = stored.find(' ');
    if (stored.substr(0, space) == etag) return true;
    if (space == std::string_view::npos) return false;
    stored.remove_prefix(space + 1);
  }
}

bool is_valid_json_pointer(std::string_view pointer) noexcept {
  if (pointer.empty()) return true;
  if (pointer.front() != '/') return false;
  for (std::size_t i = 0; i < pointer.size(); ++i) {
    if (pointer[i] != '~') continue;
    if (i + 1 >= pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1')) return false;
  }
  return true;
}

std::optional<std::string> etag_from_json_pointer(std::string_view body, std::string_view pointer) {
  if (!is_valid_json_pointer(pointer)) return std::nullopt;
  nlohmann::json document = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return std::nullopt;
  const nlohmann::json* value = nullptr;
  try {
    nlohmann::json::json_pointer location{std::string(pointer)};
    if (!document.contains(location)) return std::nullopt;
    value = &document.at(location);
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;  // e.g. an array index that is not a number
  }
  std::string opaque;
  if (value->is_string()) {
    opaque = value->get<std::string>();
  } else if (value->is_number()) {
    opaque = value->dump();
  }
  bool usable_as_is = (value->is_string() || value->is_number()) &&
                      std::all_of(opaque.begin(), opaque.end(),
                                  [](char c) { return is_ascii_etagc(static_cast<unsigned char>(c)); });
  if (usable_as_is) return "\"" + opaque + "\"";
  // Replace invalid UTF-8 rather than throw: the document parsed, but a string may not be valid.
  return mint_etag(value->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace arbiter
