#pragma once
// HTTP header fields as the proxy and the policies see them.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace arbiter {

// ASCII case-insensitive comparison, as field names require (RFC 9110 section 5.1). Inline:
// every field of every message goes through it several times.
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// `text` without leading and trailing optional whitespace (OWS: spaces and tabs, RFC 9110
// section 5.6.3); a view into `text`.
inline std::string_view without_ows(std::string_view text) noexcept {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// RFC 9110 section 5.6.2: a token (1*tchar), as field names, methods and parameter names are.
inline bool is_token(std::string_view text) noexcept {
  constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
  return !text.empty() && std::all_of(text.begin(), text.end(), [&](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           kSymbols.find(c) != std::string_view::npos;
  });
}

struct HeaderField {
  std::string_view name;
  std::string_view value;
};

// An ordered list of fields backed by one growing buffer, so that parsing a message
// allocates nothing once the buffer has grown to the size of a typical head.
// Views returned by find()/at() stay valid until the next mutation.
class HeaderList {
 public:
  HeaderList() = default;
  HeaderList(std::initializer_list<std::pair<std::string_view, std::string_view>> fields);

  void add(std::string_view name, std::string_view value);
  // Replaces every field of that name with one field (appended if there was none).
  void set(std::string_view name, std::string_view value);
  // Removes every field of that name; returns how many were removed.
  std::size_t remove(std::string_view name);
  // Removes every field whose name satisfies is_removed(name), in one pass; returns how many.
  template <class NamePredicate>
  std::size_t remove_if(NamePredicate is_removed) {
    // The bytes stay in storage_ until clear(): removal is rare and heads are short-lived.
    auto first = std::remove_if(entries_.begin(), entries_.end(), [&](const Entry& e) {
      return is_removed(std::string_view(storage_).substr(e.name_offset, e.name_length));
    });
    std::size_t removed = static_cast<std::size_t>(entries_.end() - first);
    entries_.erase(first, entries_.end());
    return removed;
  }
  void clear() noexcept;  // keeps capacity

  // The first field of that name.
  std::optional<std::string_view> find(std::string_view name) const;
  std::size_t count(std::string_view name) const;
  bool contains(std::string_view name) const { return find(name).has_value(); }

  std::size_t size() const noexcept { return entries_.size(); }
  bool empty() const noexcept { return entries_.empty(); }
  HeaderField at(std::size_t i) const;

  // Incremental building, for parsers that receive a name or value in several pieces:
  // begin_field(), then append_name()/append_value() any number of times.
  void begin_field();
  void append_name(std::string_view piece);
  void append_value(std::string_view piece);
  // Bytes of names and values held, the measure max_header_bytes is checked against.
  std::size_t byte_size() const noexcept { return storage_.size(); }

  class const_iterator {
   public:
    using value_type = HeaderField;
    using difference_type = std::ptrdiff_t;
    const_iterator() = default;
    const_iterator(const HeaderList* list, std::size_t i) : list_(list), i_(i) {}
    HeaderField operator*() const { return list_->at(i_); }
    const_iterator& operator++() { ++i_; return *this; }
    const_iterator operator++(int) { auto t = *this; ++i_; return t; }
    bool operator==(const const_iterator& o) const { return i_ == o.i_; }
   private:
    const HeaderList* list_ = nullptr;
    std::size_t i_ = 0;
  };
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, entries_.size()}; }

 private:
  struct Entry {
    std::uint32_t name_offset, name_length, value_offset, value_length;
  };
  std::string storage_;
  std::vector<Entry> entries_;
};

// Splits a comma-separated field value into trimmed, non-empty elements
// (RFC 9110 section 5.6.1), calling fn(std::string_view) for each.
template <typename Fn>
void for_each_list_element(std::string_view value, Fn&& fn) {
  std::size_t start = 0;
  while (start <= value.size()) {
    std::size_t comma = value.find(',', start);
    if (comma == std::string_view::npos) comma = value.size();
    std::string_view element = without_ows(value.substr(start, comma - start));
    if (!element.empty()) fn(element);
    start = comma + 1;
  }
}

// The media type of a Content-Type value ("application/json; charset=utf-8" -> "application/json"),
// as sent (compare it with iequals); "" when there is none.
std::string_view media_type_of(std::optional<std::string_view> content_type) noexcept;

// A representation sent without a content coding (no Content-Encoding, or "identity"): its bytes
// are the content itself.
bool identity_coded(const HeaderList& headers) noexcept;

// A response that is a stream rather than a document: Content-Type text/event-stream
// (server-sent events) or multipart/x-mixed-replace (a "push" stream). Such a body may never
// end, so it is relayed as it arrives and never held for hashing.
bool is_stream_response(const HeaderList& headers) noexcept;

}  // namespace arbiter
