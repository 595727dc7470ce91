#include "test_hooks.h"

#include <xxhash.h>

#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <optional>

namespace legacy {
namespace {

using nlohmann::json;

constexpr std::string_view kPrefix = "/_test/";
constexpr std::uint64_t kMaxGeneratedBytes = 256ull << 20;
constexpr std::uint64_t kMaxDelayMilliseconds = 600000;

json header_array(const HeaderPairs& headers) {
  json array = json::array();
  for (const auto& [name, value] : headers) array.push_back({name, value});
  return array;
}

std::optional<std::uint64_t> query_number(const Request& request, std::string_view name) {
  const auto text = request.query_parameter(name);
  if (!text || text->empty()) return std::nullopt;
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (error != std::errc() || end != text->data() + text->size()) return std::nullopt;
  return value;
}

// Headers and targets may carry any byte (obs-text); the JSON text shows what is not UTF-8 as
// U+FFFD rather than throwing.
std::string text_of(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

Reply bad_parameter(const char* name) { return error_reply(400, std::string("missing or invalid query parameter ") + name); }

// 'a'..'z' repeating, so a test can check any byte of a large body by its offset.
std::string pattern_bytes(std::size_t length) {
  std::string bytes(length, '\0');
  for (std::size_t i = 0; i < length; ++i) bytes[i] = static_cast<char>('a' + i % 26);
  return bytes;
}

Reply echo(const Request& request) {
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016" PRIx64, static_cast<std::uint64_t>(XXH3_64bits(request.body.data(), request.body.size())));
  const json body = {{"method", request.method},
                     {"target", request.target},
                     {"version", std::to_string(request.http_major) + "." + std::to_string(request.http_minor)},
                     {"headers", header_array(request.headers)},
                     {"body_length", request.body.size()},
                     {"body_xxh3", hash}};
  return Reply::json(200, text_of(body));
}

Reply serve_log(const Request& request, RequestLog& log) {
  if (request.method == "DELETE") {
    log.clear();
    return Reply::respond(Response{.status = 204});
  }
  if (request.method != "GET" && request.method != "HEAD") return error_reply(405);
  return Reply::json(200, text_of(log.to_json()));
}

Reply delay(const Request& request) {
  const auto milliseconds = query_number(request, "ms");
  if (!milliseconds || *milliseconds > kMaxDelayMilliseconds) return bad_parameter("ms");
  Reply reply = Reply::json(200, json{{"delayed_ms", *milliseconds}}.dump());
  reply.delay = std::chrono::milliseconds(*milliseconds);
  return reply;
}

Reply bytes(const Request& request) {
  const auto length = query_number(request, "n");
  if (!length || *length > kMaxGeneratedBytes) return bad_parameter("n");
  Response response{.status = 200, .headers = {{"Content-Type", "application/octet-stream"}}};
  response.body = pattern_bytes(*length);
  response.chunked = request.query_parameter("chunked") == "1";
  return Reply::respond(std::move(response));
}

Reply status(const Request& request) {
  const auto code = query_number(request, "code");
  // 1xx cannot end an exchange, so it cannot be a final answer here.
  if (!code || *code < 200 || *code > 599) return bad_parameter("code");
  const int status_code = static_cast<int>(*code);
  if (status_code == 204 || status_code == 304) return Reply::respond(Response{.status = status_code});
  return Reply::json(status_code, json{{"status", status_code}}.dump());
}

// &then=close|reset|hang|serve (default close); nullopt if it is something else.
std::optional<Reply::After> then_parameter(const Request& request) {
  const auto then = request.query_parameter("then");
  if (!then || *then == "close") return Reply::After::Close;
  if (*then == "serve") return Reply::After::KeepServing;
  if (*then == "reset") return Reply::After::Reset;
  if (*then == "hang") return Reply::After::Hang;
  return std::nullopt;
}

// Raw bytes followed by what &then= says.
Reply raw_then(const Request& request, std::string bytes) {
  const auto after = then_parameter(request);
  if (!after) return bad_parameter("then");
  return Reply::raw(std::move(bytes), *after);
}

Reply partial_response(const Request& request) {
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\n";
  return raw_then(request, head + pattern_bytes(10));
}

Reply short_chunked(const Request& request) {
  std::string bytes = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
  bytes += "1a\r\n" + pattern_bytes(26) + "\r\n";
  return raw_then(request, std::move(bytes));
}

Reply big_head(const Request& request) {
  const auto size = query_number(request, "bytes");
  if (!size || *size > kMaxGeneratedBytes) return bad_parameter("bytes");
  constexpr std::size_t kValueBytes = 1000;
  Reply reply = Reply::json(200, json{{"filler_bytes", *size}}.dump());
  char name[32];
  for (std::uint64_t field = 0; field * kValueBytes < *size; ++field) {
    std::snprintf(name, sizeof name, "X-Filler-%05" PRIu64, field);
    reply.response.headers.emplace_back(name, std::string(kValueBytes, 'f'));
  }
  return reply;
}

std::string raw_json_response(std::string_view body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + std::string(body);
}

Reply connections(const Request& request, const TestHookState& state) {
  if (request.method != "GET" && request.method != "HEAD") return error_reply(405);
  if (state.connections == nullptr) return error_reply(500, "connection counts unavailable");
  const json open(state.connections->open);
  return Reply::json(200, json{{"accepted", state.connections->accepted}, {"open", open.size()}, {"open_ids", open}}.dump());
}

Reply fault(const Request& request, FaultTable& faults) {
  if (request.method == "DELETE") {
    faults.clear();
    return Reply::respond(Response{.status = 204});
  }
  if (request.method != "POST") return error_reply(405);
  const auto path = request.query_parameter("path");
  if (!path || path->empty() || path->front() != '/') return bad_parameter("path");
  const auto action = request.query_parameter("action");
  Reply reply;
  if (action == "reset") {
    reply = Reply::reset();
  } else if (action == "close") {
    reply = Reply::close();
  } else if (action == "hang") {
    reply = Reply::hang();
  } else {
    return bad_parameter("action");
  }
  faults.arm(FaultTable::Fault{.method = std::string(request.query_parameter("method").value_or("")),
                               .path = std::string(*path),
                               .reply = std::move(reply),
                               .apply = request.query_parameter("apply") == "1"});
  return Reply::respond(Response{.status = 204});
}

}  // namespace

void RequestLog::record(const Request& request) {
  if (entries_.size() == kCapacity) entries_.pop_front();
  entries_.push_back(Entry{request.method, request.target, request.headers, request.body.size(), request.connection});
}

json RequestLog::to_json() const {
  json array = json::array();
  for (const Entry& entry : entries_) {
    array.push_back({{"method", entry.method},
                     {"target", entry.target},
                     {"headers", header_array(entry.headers)},
                     {"body_length", entry.body_length},
                     {"connection", entry.connection}});
  }
  return array;
}

std::optional<FaultTable::Fault> FaultTable::take(const Request& request) {
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    const bool method_matches = it->method.empty() ? request.method != "GET" && request.method != "HEAD"
                                                   : it->method == request.method;
    if (method_matches && it->path == request.path) {
      Fault fault = std::move(*it);
      faults_.erase(it);
      return fault;
    }
  }
  return std::nullopt;
}

bool is_test_hook(const Request& request) { return request.path.starts_with(kPrefix); }

Reply serve_test_hook(const Request& request, TestHookState& state) {
  RequestLog& log = state.log;
  const std::string_view hook = std::string_view(request.path).substr(kPrefix.size());
  if (hook == "echo") return echo(request);
  if (hook == "log") return serve_log(request, log);
  if (hook == "delay") return delay(request);
  if (hook == "bytes") return bytes(request);
  if (hook == "status") return status(request);
  if (hook == "close") return Reply::close();
  if (hook == "reset") return Reply::reset();
  if (hook == "garbage") return raw_then(request, "this is not http\r\n\r\n");
  if (hook == "partial") return partial_response(request);
  if (hook == "hang") return Reply::hang();
  if (hook == "half-head") return raw_then(request, "HTTP/1.1 200 OK\r\nContent-Type: appl");
  if (hook == "short-chunked") return short_chunked(request);
  if (hook == "big-head") return big_head(request);
  if (hook == "extra-response") {
    return Reply::raw(raw_json_response(R"({"extra":0})") + raw_json_response(R"({"smuggled":true})"),
                      Reply::After::KeepServing);
  }
  if (hook == "raw") return raw_then(request, request.body);
  if (hook == "connections") return connections(request, state);
  if (hook == "fault") return fault(request, state.faults);
  return error_reply(404, "no such test hook");
}

}  // namespace legacy
