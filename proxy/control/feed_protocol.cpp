#include "proxy/control/feed_protocol.h"

#include <algorithm>
#include <charconv>

#include <nlohmann/json.hpp>

#include "proxy/control/feed_json.h"
#include "proxy/http/query.h"

namespace arbiter {

namespace {

// A weight of 0 ("0", "0.", "0.000"): the media range is not acceptable.
bool zero_weight(std::string_view q) {
  return !q.empty() && q.front() == '0' &&
         std::all_of(q.begin() + 1, q.end(), [](char c) { return c == '0' || c == '.'; });
}

// One element of Accept: "text/event-stream;q=0.5" asks for the stream unless its q is 0.
bool asks_for_event_stream(std::string_view element) {
  std::size_t semicolon = element.find(';');
  if (!iequals(without_ows(element.substr(0, semicolon)), "text/event-stream")) return false;
  while (semicolon != std::string_view::npos) {
    element.remove_prefix(semicolon + 1);
    semicolon = element.find(';');
    std::string_view parameter = without_ows(element.substr(0, semicolon));
    std::size_t equals = parameter.find('=');
    if (equals != std::string_view::npos && iequals(without_ows(parameter.substr(0, equals)), "q") &&
        zero_weight(without_ows(parameter.substr(equals + 1)))) {
      return false;
    }
  }
  return true;
}

FeedParamError bad_parameter(std::string_view slug, std::string title, std::string detail) {
  return FeedParamError{Problem::make(slug, 400, std::move(title), std::move(detail))};
}

std::optional<std::uint64_t> decimal(std::string_view text) {
  std::uint64_t number = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return number;
}

std::string known_types_text() {
  std::string text;
  for (std::string_view type : kFeedEventTypes) text += (text.empty() ? "" : ", ") + std::string(type);
  return text;
}

std::string one_line(const nlohmann::json& json) {
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

bool accepts_event_stream(const HeaderList& headers) {
  bool asked = false;
  for (HeaderField field : headers) {
    if (!iequals(field.name, "accept")) continue;
    for_each_list_element(field.value, [&](std::string_view element) { asked = asked || asks_for_event_stream(element); });
  }
  return asked;
}

FeedFilterParse parse_feed_filter(std::string_view query) {
  FeedFilterParse parse;
  parse.filter.resource = query_param(query, "resource").value_or("");
  parse.filter.route = query_param(query, "route").value_or("");
  std::string types = query_param(query, "type").value_or("");
  std::vector<std::string> unknown;
  for_each_list_element(types, [&](std::string_view type) {
    bool known = std::find(std::begin(kFeedEventTypes), std::end(kFeedEventTypes), type) != std::end(kFeedEventTypes);
    (known ? parse.filter.types : unknown).emplace_back(type);
  });
  if (!unknown.empty()) {
    std::string names;
    for (const std::string& type : unknown) names += (names.empty() ? "'" : ", '") + type + "'";
    FeedParamError error = bad_parameter("unknown-event-type", "Unknown event type",
                                         "?type= names " + names + ", which the feed does not publish. Its types are " +
                                             known_types_text() + ".");
    error.problem.extensions.emplace_back("known", nlohmann::json(std::vector<std::string>(
                                                       std::begin(kFeedEventTypes), std::end(kFeedEventTypes))));
    parse.error = std::move(error);
  }
  return parse;
}

FeedPollParams parse_feed_poll(std::string_view query) {
  FeedPollParams params;
  if (auto since = query_param(query, "since")) {
    auto number = decimal(*since);
    if (!number) {
      params.error = bad_parameter("bad-since", "Bad since",
                                   "since must be an event id (0, 1, 2, ...): the `next` of the previous answer.");
      return params;
    }
    params.since = *number;
  }
  if (auto limit = query_param(query, "limit")) {
    auto number = decimal(*limit);
    if (!number || *number == 0) {
      params.error = bad_parameter("bad-limit", "Bad limit",
                                   "limit must be a number of events from 1 to " + std::to_string(kFeedPollMaxLimit) +
                                       " (default " + std::to_string(kFeedPollDefaultLimit) + ").");
      return params;
    }
    params.limit = static_cast<std::size_t>(std::min<std::uint64_t>(*number, kFeedPollMaxLimit));
  }
  return params;
}

FeedResumeParse parse_feed_resume(const HeaderList& headers, std::string_view query) {
  FeedResumeParse parse;
  std::optional<std::string> text;
  if (auto field = headers.find("Last-Event-ID")) {
    text = std::string(without_ows(*field));
  } else {
    text = query_param(query, "last_event_id");
  }
  if (!text) return parse;
  parse.after = decimal(*text);
  if (!parse.after) {
    parse.error = bad_parameter("bad-last-event-id", "Bad Last-Event-ID",
                                "Last-Event-ID (or ?last_event_id=) must be the id of an event this feed sent "
                                "(1, 2, ...); '" + *text + "' is not one.");
  }
  return parse;
}

std::string sse_retry_frame(std::uint64_t milliseconds) { return "retry: " + std::to_string(milliseconds) + "\n\n"; }

std::string sse_event_frame(const FeedEvent& event) {
  return "id: " + std::to_string(event.id) + "\nevent: " + event.type + "\ndata: " + one_line(feed_event_json(event)) +
         "\n\n";
}

std::string sse_reset_frame(std::uint64_t asked, std::uint64_t resume_from) {
  nlohmann::json data = {{"missed", true},
                         {"last_event_id", asked},
                         {"resume_from", resume_from},
                         {"detail", "The feed no longer holds the events after " + std::to_string(asked) +
                                        " (or never published that id): some were missed. The events it holds follow, "
                                        "after " + std::to_string(resume_from) + "."}};
  return "id: " + std::to_string(resume_from) + "\nevent: reset\ndata: " + one_line(data) + "\n\n";
}

std::string_view sse_heartbeat_frame() { return ": heartbeat\n\n"; }

}  // namespace arbiter
