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
  return Reply::json(200, body.dump());
}

Reply serve_log(const Request& request, RequestLog& log) {
  if (request.method == "DELETE") {
    log.clear();
    return Reply::respond(Response{.status = 204});
  }
  if (request.method != "GET" && request.method != "HEAD") return error_reply(405);
  return Reply::json(200, log.to_json().dump());
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

Reply partial_response() {
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\n";
  return Reply::raw_then_close(head + pattern_bytes(10));
}

}  // namespace

void RequestLog::record(const Request& request) {
  if (entries_.size() == kCapacity) entries_.pop_front();
  entries_.push_back(Entry{request.method, request.target, request.headers, request.body.size()});
}

json RequestLog::to_json() const {
  json array = json::array();
  for (const Entry& entry : entries_) {
    array.push_back({{"method", entry.method},
                     {"target", entry.target},
                     {"headers", header_array(entry.headers)},
                     {"body_length", entry.body_length}});
  }
  return array;
}

bool is_test_hook(const Request& request) { return request.path.starts_with(kPrefix); }

Reply serve_test_hook(const Request& request, RequestLog& log) {
  const std::string_view hook = std::string_view(request.path).substr(kPrefix.size());
  if (hook == "echo") return echo(request);
  if (hook == "log") return serve_log(request, log);
  if (hook == "delay") return delay(request);
  if (hook == "bytes") return bytes(request);
  if (hook == "status") return status(request);
  if (hook == "close") return Reply::close();
  if (hook == "reset") return Reply::reset();
  if (hook == "garbage") return Reply::raw_then_close("this is not http\r\n\r\n");
  if (hook == "partial") return partial_response();
  return error_reply(404, "no such test hook");
}

}  // namespace legacy
