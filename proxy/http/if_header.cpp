#include "proxy/http/if_header.h"

#include <algorithm>

#include "proxy/http/headers.h"
#include "proxy/http/path_normalization.h"

namespace arbiter {

namespace {

bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

// Reads the field left to right; every read_* skips the whitespace before what it reads.
class IfReader {
 public:
  explicit IfReader(std::string_view text) : text_(text) {}

  bool at_end() {
    skip_ows();
    return pos_ == text_.size();
  }
  bool next_is(char c) {
    skip_ows();
    return pos_ < text_.size() && text_[pos_] == c;
  }
  // "<" ... ">" with no whitespace or '>' inside; the text between.
  std::optional<std::string> read_angle() {
    if (!next_is('<')) return std::nullopt;
    std::size_t close = text_.find('>', pos_ + 1);
    if (close == std::string_view::npos || close == pos_ + 1) return std::nullopt;
    std::string_view inside = text_.substr(pos_ + 1, close - pos_ - 1);
    for (char c : inside) {
      if (is_ows(c) || c == '<') return std::nullopt;
    }
    pos_ = close + 1;
    return std::string(inside);
  }
  // "(" 1*Condition ")"
  std::optional<std::vector<IfCondition>> read_list() {
    if (!next_is('(')) return std::nullopt;
    ++pos_;
    std::vector<IfCondition> conditions;
    while (!next_is(')')) {
      IfCondition condition;
      if (iequals(text_.substr(pos_, 3), "not")) {  // an ABNF literal: any case
        condition.negated = true;
        pos_ += 3;
      }
      if (next_is('<')) {
        auto token = read_angle();
        if (!token) return std::nullopt;
        condition.value = std::move(*token);
      } else if (next_is('[')) {
        auto tag = read_entity_tag();
        if (!tag) return std::nullopt;
        condition.is_etag = true;
        condition.value = std::move(*tag);
      } else {
        return std::nullopt;  // neither, or the end of the field inside a list
      }
      conditions.push_back(std::move(condition));
    }
    ++pos_;  // ')'
    if (conditions.empty()) return std::nullopt;
    return conditions;
  }

 private:
  void skip_ows() {
    while (pos_ < text_.size() && is_ows(text_[pos_])) ++pos_;
  }
  // "[" entity-tag "]": entity-tag = [ "W/" ] opaque-tag, a quoted string (RFC 2616 section 3.11).
  std::optional<std::string> read_entity_tag() {
    ++pos_;  // '['
    skip_ows();
    std::size_t start = pos_;
    if (text_.substr(pos_).starts_with("W/")) pos_ += 2;
    if (pos_ >= text_.size() || text_[pos_] != '"') return std::nullopt;
    std::size_t close = text_.find('"', pos_ + 1);
    if (close == std::string_view::npos) return std::nullopt;
    // RFC 4918 takes entity-tag from RFC 2616, where the opaque tag is a quoted-string: its own
    // examples have spaces inside (section 10.4.6). Control characters are refused.
    for (std::size_t i = pos_ + 1; i < close; ++i) {
      auto c = static_cast<unsigned char>(text_[i]);
      if ((c < 0x20 && c != '\t') || c == 0x7f) return std::nullopt;
    }
    pos_ = close + 1;
    std::string tag(text_.substr(start, pos_ - start));
    if (!next_is(']')) return std::nullopt;
    ++pos_;
    return tag;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

// The path of an absolute URI ("http://host/a?q" -> "/a") or of an absolute path ("/a?q" -> "/a").
std::string_view path_of(std::string_view uri) {
  if (!uri.starts_with('/')) {
    std::size_t scheme_end = uri.find("://");
    if (scheme_end == std::string_view::npos) return {};
    std::size_t path_start = uri.find('/', scheme_end + 3);
    uri = path_start == std::string_view::npos ? std::string_view("/") : uri.substr(path_start);
  }
  return uri.substr(0, std::min(uri.find('?'), uri.find('#')));
}

}  // namespace

std::optional<std::vector<IfList>> parse_if_header(std::string_view value) {
  IfReader reader(value);
  std::vector<IfList> lists;
  std::optional<bool> tagged;
  while (!reader.at_end()) {
    IfList list;
    if (reader.next_is('<')) {
      if (tagged == false) return std::nullopt;
      tagged = true;
      auto tag = reader.read_angle();
      if (!tag) return std::nullopt;
      list.resource = std::move(*tag);
      // A Resource-Tag governs the lists after it, up to the next tag.
      auto conditions = reader.read_list();
      if (!conditions) return std::nullopt;
      list.conditions = std::move(*conditions);
      lists.push_back(list);
      while (reader.next_is('(')) {
        auto more = reader.read_list();
        if (!more) return std::nullopt;
        lists.push_back(IfList{list.resource, std::move(*more)});
      }
      continue;
    }
    if (tagged == true) return std::nullopt;
    tagged = false;
    auto conditions = reader.read_list();
    if (!conditions) return std::nullopt;
    list.conditions = std::move(*conditions);
    lists.push_back(std::move(list));
  }
  if (lists.empty()) return std::nullopt;
  return lists;
}

bool if_list_applies(const IfList& list, std::string_view path) {
  if (!list.resource) return true;
  std::string_view tag_path = path_of(*list.resource);
  if (tag_path.empty()) return false;
  std::string normalized, why;
  if (!normalize_path(tag_path, normalized, why)) return false;
  return normalized == path;
}

}  // namespace arbiter
