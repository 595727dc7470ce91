#include "proxy/http/headers.h"

#include <algorithm>

namespace arbiter {

HeaderList::HeaderList(std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
  for (const auto& [name, value] : fields) add(name, value);
}

void HeaderList::add(std::string_view name, std::string_view value) {
  begin_field();
  append_name(name);
  append_value(value);
}

void HeaderList::set(std::string_view name, std::string_view value) {
  remove(name);
  add(name, value);
}

std::size_t HeaderList::remove(std::string_view name) {
  return remove_if([name](std::string_view field_name) { return iequals(field_name, name); });
}

void HeaderList::clear() noexcept {
  storage_.clear();
  entries_.clear();
}

std::optional<std::string_view> HeaderList::find(std::string_view name) const {
  for (const Entry& e : entries_) {
    if (iequals(std::string_view(storage_).substr(e.name_offset, e.name_length), name)) {
      return std::string_view(storage_).substr(e.value_offset, e.value_length);
    }
  }
  return std::nullopt;
}

std::size_t HeaderList::count(std::string_view name) const {
  std::size_t n = 0;
  for (const Entry& e : entries_) {
    if (iequals(std::string_view(storage_).substr(e.name_offset, e.name_length), name)) ++n;
  }
  return n;
}

HeaderField HeaderList::at(std::size_t i) const {
  const Entry& e = entries_[i];
  std::string_view s(storage_);
  return {s.substr(e.name_offset, e.name_length), s.substr(e.value_offset, e.value_length)};
}

void HeaderList::begin_field() {
  auto end = static_cast<std::uint32_t>(storage_.size());
  entries_.push_back({end, 0, end, 0});
}

void HeaderList::append_name(std::string_view piece) {
  // Names are complete before the value starts, so the name stays contiguous.
  Entry& e = entries_.back();
  storage_.append(piece);
  e.name_length += static_cast<std::uint32_t>(piece.size());
  e.value_offset = static_cast<std::uint32_t>(storage_.size());
}

void HeaderList::append_value(std::string_view piece) {
  Entry& e = entries_.back();
  storage_.append(piece);
  e.value_length += static_cast<std::uint32_t>(piece.size());
}

std::string_view media_type_of(std::optional<std::string_view> content_type) noexcept {
  return content_type ? without_ows(content_type->substr(0, content_type->find(';'))) : std::string_view();
}

bool identity_coded(const HeaderList& headers) noexcept {
  auto coding = headers.find("Content-Encoding");
  return !coding || without_ows(*coding).empty() || iequals(without_ows(*coding), "identity");
}

bool is_stream_response(const HeaderList& headers) noexcept {
  std::string_view media_type = media_type_of(headers.find("Content-Type"));
  return iequals(media_type, "text/event-stream") || iequals(media_type, "multipart/x-mixed-replace");
}

}  // namespace arbiter
