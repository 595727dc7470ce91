#pragma once
// Server-Sent Events as a client parses them (WHATWG HTML, "Server-sent events": field lines up
// to a blank line), for the unit and integration tests of the conflict feed.

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace harness {

// One block of lines ended by a blank line: an event (data), or only comments or a retry.
struct SseEvent {
  std::string id, event, data;
  std::vector<std::string> comments;
  std::string retry;
};

// The blocks of `text`, which must end with a blank line.
inline std::vector<SseEvent> parse_sse(std::string_view text) {
  std::vector<SseEvent> events;
  SseEvent current;
  bool any = false;
  while (!text.empty()) {
    std::size_t newline = text.find('\n');
    if (newline == std::string_view::npos) {
      ADD_FAILURE() << "an unterminated line: " << text;
      break;
    }
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline + 1);
    if (line.empty()) {
      if (any) events.push_back(std::move(current));
      current = {};
      any = false;
      continue;
    }
    any = true;
    std::size_t colon = line.find(':');
    std::string_view name = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (name.empty()) {
      current.comments.emplace_back(value);
    } else if (name == "id") {
      current.id = value;
    } else if (name == "event") {
      current.event = value;
    } else if (name == "data") {
      current.data += (current.data.empty() ? "" : "\n") + std::string(value);
    } else if (name == "retry") {
      current.retry = value;
    } else {
      ADD_FAILURE() << "an unknown field: " << line;
    }
  }
  EXPECT_FALSE(any) << "the last event has no blank line";
  return events;
}

}  // namespace harness
