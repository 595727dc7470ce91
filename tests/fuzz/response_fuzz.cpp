// libFuzzer harness: the upstream response path, from the bytes a backend sends to the bytes
// the client would get, with no socket.
//
// The input is what the backend sends on one connection after one request (cut into reads by
// for_each_read), then EOF. FuzzUpstream drives the proxy's own ResponseParser
// (proxy/http/response_parser.h: interim 1xx answers skipped, 101 refused, the 256 KiB head limit,
// obs-fold refused, remove_hop_by_hop, framing, a HEAD answer read without a body, EOF) the way
// UpstreamConnection::on_read does (its reading half is private to a class that owns libuv
// handles: keep FuzzUpstream in step with it), and hands the events to the real Exchange
// (proxy/exchange/exchange.h) hosted by FakeExchangeHost: the route's response policies over
// a held or withheld body, the framing re-chosen for the client, 502 or a close on failure.
//
// The request each input answers is chosen from the input's hash: route (ETag with the
// backend's tag or a hash, ETag from a JSON pointer, no policy), method (GET, HEAD, PUT,
// DELETE), HTTP/1.0 or 1.1, with or without If-None-Match.
//
// Checked besides the sanitizers (a failure traps): no framing field of the backend survives
// hop-by-hop removal; what the client would receive parses with llhttp as one response (a prefix
// of one when the exchange broke off), carrying the backend's body bytes when it relays the
// backend's status.

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <llhttp.h>
#include <xxhash.h>

#include "policies/policy.h"
#include "proxy/config/config.h"
#include "proxy/http/forwarding.h"
#include "proxy/http/response_parser.h"
#include "proxy/exchange/router.h"
#include "proxy/exchange/runtime.h"
#include "proxy/exchange/exchange.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/support/fake_exchange_host.h"

namespace arbiter {
namespace {

constexpr std::string_view kConfig = R"toml(
[upstream.backend]
servers = ["127.0.0.1:9"]

[[route]]
name = "tagged"
path = "/tagged/{id}"
upstream = "backend"
[route.etag]
source = "auto"
max_body_bytes = 256
max_entries = 4
[[route.limit]]
rate = "1000/s"
key = "ip"
max_keys = 4

[[route]]
name = "versioned"
path = "/versioned/{id}"
upstream = "backend"
[route.etag]
source = "json:/version"
verify = "cache"
max_entries = 4

[[route]]
name = "plain"
path = "/plain/*"
upstream = "backend"
)toml";

constexpr std::string_view kTargets[] = {"/tagged/1", "/versioned/1", "/plain/1"};
constexpr std::string_view kMethods[] = {"GET", "HEAD", "PUT", "DELETE"};

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "response_fuzz: %s\n", what);
  __builtin_trap();
}

// What the client received must be one response (or, when the exchange broke off, the
// beginning of one); relaying the backend's status, it carries the backend's body bytes.
void check_client_bytes(const testing::FakeExchangeHost& host, bool head_request, int backend_status,
                        const std::string& backend_body) {
  struct Reading {
    std::string body;
    int messages = 0;
    bool head = false;
  } reading;
  reading.head = head_request;
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_body = [](llhttp_t* p, const char* at, std::size_t length) {
    static_cast<Reading*>(p->data)->body.append(at, length);
    return 0;
  };
  settings.on_headers_complete = [](llhttp_t* p) { return static_cast<Reading*>(p->data)->head ? 1 : 0; };
  settings.on_message_complete = [](llhttp_t* p) {
    ++static_cast<Reading*>(p->data)->messages;
    return 0;
  };
  llhttp_t parser;
  llhttp_init(&parser, HTTP_RESPONSE, &settings);
  parser.data = &reading;
  const std::string& out = host.to_client;
  llhttp_errno_t rc = llhttp_execute(&parser, out.data(), out.size());
  bool complete = host.exchanges_done > 0 && !host.aborted;
  if (rc == HPE_OK && complete) rc = llhttp_finish(&parser);  // a body that ends with the connection
  if (rc != HPE_OK) {
    std::fprintf(stderr, "client bytes:\n%s\nllhttp: %s\n", out.c_str(), llhttp_errno_name(rc));
    fail("the client would get bytes that do not parse as a response");
  }
  if (reading.messages > 1) fail("the client would get more than one response");
  if (complete && reading.messages != 1) fail("a complete exchange sent the client an incomplete response");
  if (head_request || parser.status_code != backend_status || status_has_no_body(backend_status)) return;
  if (complete ? reading.body != backend_body : backend_body.compare(0, reading.body.size(), reading.body) != 0) {
    fail("the client would get other body bytes than the backend sent");
  }
}

// UpstreamConnection's reading half (on_read, on_response_head, on_response_body), for one
// exchange on a fresh connection.
class FuzzUpstream final : public ResponseEvents {
 public:
  FuzzUpstream(testing::FakeExchangeHost& host, bool head_request) : host_(host) {
    parser_.set_head_request(head_request);
  }

  int status() const noexcept { return status_; }
  const std::string& body() const noexcept { return body_; }

  void on_read(std::string_view data) {
    if (done_) return;
    std::size_t consumed = 0;
    llhttp_errno_t rc = parser_.execute(data.data(), data.size(), consumed);
    if (done_) return;
    if (rc == HPE_PAUSED && parser_.complete()) {
      finish_response();  // bytes after it only make the connection unfit for reuse
      return;
    }
    if (rc != HPE_OK) failed();
  }

  void on_eof() {
    if (done_) return;
    if (parser_.finish_at_eof()) {
      finish_response();
      return;
    }
    failed();
  }

  bool on_response_head(int status, HeaderList& headers, BodyFraming framing, std::uint64_t content_length) override {
    for (HeaderField field : headers) {
      if (iequals(field.name, "transfer-encoding") || iequals(field.name, "content-length")) {
        fail("a framing field of the backend survived remove_hop_by_hop");
      }
    }
    status_ = status;
    held_headers_ = headers;
    if (UpstreamEvents* sink = host_.upstream_events()) sink->on_upstream_head(status, headers, framing, content_length);
    return true;
  }

  bool on_response_body(std::string_view piece) override {
    body_.append(piece);
    if (UpstreamEvents* sink = host_.upstream_events()) sink->on_upstream_body(piece);
    return true;
  }

  // A side request the response policies made (the ETag policy's re-read): the same backend
  // bytes, as if it had answered the GET alike.
  void answer_side_requests() {
    for (std::size_t i = 0; i < host_.side_calls.size() && host_.exchange; ++i) {
      if (host_.side_calls[i].answered) continue;
      host_.answer_side_request(i, FetchedResponse{true, status_, held_headers_, body_, true});
    }
  }

 private:
  void finish_response() {
    done_ = true;
    if (UpstreamEvents* sink = host_.upstream_events()) {
      host_.upstream_ended();
      sink->on_upstream_complete();
    }
    answer_side_requests();
  }
  void failed() {
    done_ = true;
    if (UpstreamEvents* sink = host_.upstream_events()) {
      host_.upstream_ended();
      sink->on_upstream_failed(UpstreamFailure::BadResponse, false, 0);
    }
  }

  testing::FakeExchangeHost& host_;
  int status_ = 0;
  HeaderList held_headers_;
  std::string body_;
  ResponseParser parser_{*this};
  bool done_ = false;
};

}  // namespace
}  // namespace arbiter

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace arbiter;
  static const Config config = fuzz::fixed_config(kConfig);
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::uint64_t choice = XXH64(input.data(), input.size(), 0x5eed);
  std::string_view target = kTargets[choice % 3];
  std::string_view method = kMethods[(choice >> 2) % 4];
  bool http10 = (choice >> 4) % 4 == 0;
  HeaderList request_headers{{"Host", "backend"}};
  if ((choice >> 6) % 2 == 0) request_headers.add("If-None-Match", (choice >> 7) % 2 == 0 ? "*" : "\"v1\", W/\"abc\"");

  RuntimeState state;
  auto runtime = std::make_shared<const Runtime>(config, state);
  std::string request = std::string(method) + " " + std::string(target) + (http10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
  for (HeaderField field : request_headers) request.append(field.name).append(": ").append(field.value).append("\r\n");
  if (method == "PUT") request.append("Content-Length: 2\r\n\r\n{}");
  else request.append("\r\n");

  testing::FakeExchangeHost host(runtime);
  host.feed(request);
  // A write's request phase may read the resource first (verify = "upstream"): it is not there.
  for (std::size_t i = 0; i < host.side_calls.size() && host.exchange; ++i) {
    host.answer_side_request(i, FetchedResponse{true, 404, {}, {}, true});
  }
  if (!host.exchange || host.exchange->stage() != Exchange::Stage::Upstream) return 0;  // answered without the backend

  FuzzUpstream upstream(host, method == "HEAD");
  fuzz::for_each_read(input, [&](std::string_view read) { upstream.on_read(read); });
  upstream.on_eof();
  check_client_bytes(host, method == "HEAD", upstream.status(), upstream.body());
  return 0;
}
