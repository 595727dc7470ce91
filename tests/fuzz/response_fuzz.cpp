// libFuzzer harness: the upstream response path, from the bytes a backend sends to the bytes
// the client would get, with no socket.
//
// The input is what the backend sends on one connection after one request (cut into reads by
// for_each_read), then EOF. FuzzUpstream drives the proxy's own ResponseParser
// (proxy/http/response_parser.h: interim 1xx answers skipped, 101 refused, the 256 KiB head limit,
// obs-fold refused, remove_hop_by_hop, framing, a HEAD answer read without a body, EOF) the way
// UpstreamConnection::on_read does; FuzzExchange follows the response half of
// proxy/net/client_connection.cpp (on_upstream_head, the route's response policies over a held or
// withheld body, send_response_head/_body with the framing re-chosen for the client, 502 or a
// close on failure). Those two are private to classes that own libuv handles, so their steps are
// followed here under the same names: keep them in step.
//
// The request each input answers is chosen from the input's hash: route (ETag with the
// backend's tag or a hash, ETag from a JSON pointer, no policy), method (GET, HEAD, PUT,
// DELETE), HTTP/1.0 or 1.1, with or without If-None-Match.
//
// Checked besides the sanitizers (a failure traps): no framing field of the backend survives
// hop-by-hop removal; what the client would receive parses with llhttp as one response (a prefix
// of one when the exchange broke off), with exactly the body bytes Arbiter meant to send.

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
#include "tests/fuzz/fuzz_support.h"

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

// The client side of one exchange: ClientConnection from on_upstream_head on, writing what it
// would send the client into `out`.
class FuzzExchange {
 public:
  FuzzExchange(const RouteRuntime& route, const RequestView& request, bool http10,
               std::vector<std::unique_ptr<ExchangeState>>& states)
      : route_(route), request_(request), http10_(http10), states_(states) {}

  void on_upstream_head(int status, HeaderList& headers, BodyFraming framing, std::uint64_t content_length) {
    response_status_ = status;
    if (route_.policies.empty()) {
      send_response_head(headers, framing, content_length);
      return;
    }
    held_headers_ = headers;
    held_framing_ = framing;
    held_length_ = content_length;
    bool body_follows = framing != BodyFraming::None && request_.method != "HEAD";
    if (!body_follows) {
      holding_response_ = true;
    } else if (route_.response_body_limit > 0) {
      holding_response_ = true;
      buffering_body_ = true;
    } else {
      release_held_head_withheld();
    }
  }

  void on_upstream_body(std::string_view data) {
    if (buffering_body_) {
      if (buffered_body_.size() + data.size() <= route_.response_body_limit) {
        buffered_body_.append(data);
        return;
      }
      buffering_body_ = false;
      release_held_head_withheld();
      send_response_body(buffered_body_);
      buffered_body_.clear();
    }
    send_response_body(data);
  }

  void on_upstream_complete() {
    if (holding_response_) {
      run_response_policies(true);
      deliver_held_response();
      return;
    }
    if (response_framing_ == BodyFraming::Chunked) out_.append("0\r\n\r\n");
    complete_ = true;
  }

  void on_upstream_failed() {
    if (response_head_sent_) {
      closed_ = true;  // the client has part of a response; only closing tells it so
      return;
    }
    response_status_ = 502;
    std::string body = Problem::make("upstream-unavailable", 502, "Upstream unavailable", "Bad response.")
                           .to_json(request_.request_id);
    HeaderList headers{{"Content-Type", kProblemContentType}, {"Cache-Control", "no-store"}};
    write_head(headers, BodyFraming::ContentLength, body.size());
    if (request_.method != "HEAD") {
      out_.append(body);
      sent_body_ = body;
    }
    complete_ = true;
  }

  // What the client received must be one response (or, when the exchange broke off, the
  // beginning of one) carrying exactly the body bytes sent.
  void check_client_bytes() const {
    struct Reading {
      std::string body;
      int messages = 0;
      bool head = false;
    } reading;
    reading.head = request_.method == "HEAD";
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
    llhttp_errno_t rc = llhttp_execute(&parser, out_.data(), out_.size());
    if (rc == HPE_OK && complete_ && !closed_ && response_framing_ == BodyFraming::UntilClose) rc = llhttp_finish(&parser);
    if (rc != HPE_OK) {
      std::fprintf(stderr, "client bytes:\n%s\nllhttp: %s\n", out_.c_str(), llhttp_errno_name(rc));
      fail("the client would get bytes that do not parse as a response");
    }
    if (reading.messages > 1) fail("the client would get more than one response");
    if (complete_ && !closed_) {
      if (reading.messages != 1) fail("a complete exchange sent the client an incomplete response");
      if (reading.body != sent_body_) fail("the client would get other body bytes than sent");
    } else if (reading.body != sent_body_.substr(0, reading.body.size())) {
      fail("the client would get other body bytes than sent");
    }
  }

 private:
  void release_held_head_withheld() {
    holding_response_ = false;
    body_withheld_ = true;
    run_response_policies(false);
    send_response_head(held_headers_, held_framing_, held_length_);
  }

  void run_response_policies(bool may_fetch) {
    const auto& policies = route_.policies;
    for (std::size_t index = policies.size(); index > 0; --index) {
      std::size_t i = index - 1;
      ResponseView response{response_status_, held_headers_, buffering_body_ ? &buffered_body_ : nullptr,
                            body_withheld_, request_.now};
      ResponseStep step = policies[i]->on_response(request_, response, states_[i].get());
      response_status_ = response.status;
      if (step.fetch_first && may_fetch) {
        // The subrequest's answer: the same backend bytes, as if it had answered the GET alike.
        FetchedResponse fetched{true, response_status_, held_headers_, buffered_body_, buffering_body_};
        policies[i]->on_response_fetched(request_, response, fetched, states_[i].get());
        response_status_ = response.status;
      }
    }
  }

  void deliver_held_response() {
    holding_response_ = false;
    if (buffering_body_) {
      buffering_body_ = false;
      send_response_head(held_headers_, BodyFraming::ContentLength, buffered_body_.size());
      send_response_body(buffered_body_);
    } else {
      send_response_head(held_headers_, held_framing_, held_length_);
    }
    complete_ = true;
  }

  void send_response_head(HeaderList& headers, BodyFraming upstream_framing, std::uint64_t content_length) {
    bool no_body = request_.method == "HEAD" || status_has_no_body(response_status_);
    response_has_body_ = !no_body && upstream_framing != BodyFraming::None;
    BodyFraming announced = upstream_framing;
    if (no_body) {
      announced = upstream_framing == BodyFraming::ContentLength && request_.method == "HEAD"
                      ? BodyFraming::ContentLength
                      : BodyFraming::None;
    } else if (upstream_framing == BodyFraming::Chunked || upstream_framing == BodyFraming::UntilClose) {
      announced = http10_ ? BodyFraming::UntilClose : BodyFraming::Chunked;
    }
    response_framing_ = no_body ? BodyFraming::None : announced;
    headers.add("Via", "1.1 arbiter");
    write_head(headers, announced, content_length);
    response_head_sent_ = true;
  }

  void write_head(const HeaderList& headers, BodyFraming framing, std::uint64_t content_length) {
    write_client_response_head(out_, ClientResponse{response_status_, headers, framing, content_length,
                                                    framing != BodyFraming::UntilClose, http10_, request_.request_id});
  }

  void send_response_body(std::string_view data) {
    if (data.empty() || !response_has_body_) return;
    sent_body_.append(data);
    if (response_framing_ == BodyFraming::Chunked) {
      char size_line[24];
      int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
      out_.append(size_line, static_cast<std::size_t>(n));
      out_.append(data);
      out_.append("\r\n");
    } else {
      out_.append(data);
    }
  }

  const RouteRuntime& route_;
  const RequestView& request_;
  bool http10_;
  std::vector<std::unique_ptr<ExchangeState>>& states_;
  int response_status_ = 0;
  bool response_head_sent_ = false;
  bool response_has_body_ = false;
  BodyFraming response_framing_ = BodyFraming::None;
  bool holding_response_ = false;
  bool buffering_body_ = false;
  bool body_withheld_ = false;
  HeaderList held_headers_;
  BodyFraming held_framing_ = BodyFraming::None;
  std::uint64_t held_length_ = 0;
  std::string buffered_body_;
  std::string out_;        // what the client would receive
  std::string sent_body_;  // the body bytes meant for it
  bool complete_ = false;
  bool closed_ = false;
};

// UpstreamConnection's reading half (on_read, on_response_head, on_response_body), for one
// exchange on a fresh connection.
class FuzzUpstream final : public ResponseEvents {
 public:
  FuzzUpstream(FuzzExchange& sink, bool head_request) : sink_(sink) { parser_.set_head_request(head_request); }

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
    sink_.on_upstream_head(status, headers, framing, content_length);
    return true;
  }

  bool on_response_body(std::string_view piece) override {
    sink_.on_upstream_body(piece);
    return true;
  }

 private:
  void finish_response() {
    done_ = true;
    sink_.on_upstream_complete();
  }
  void failed() {
    done_ = true;
    sink_.on_upstream_failed();
  }

  FuzzExchange& sink_;
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
  Runtime runtime(config, state);
  fuzz::FakeClock clock;
  RouteMatch match;
  if (runtime.router().match(method, target, match) != Router::Outcome::Matched) fail("the fixed routes changed");
  const RouteRuntime& route = runtime.route(match.route_index);
  RequestView request{method, target, target, {}, request_headers, "127.0.0.1", route.config->name, match.params,
                      "fuzz-1", clock.now(), nullptr};
  // The request phase first, for the state the response phase needs; a write is unconditional
  // here, so it is forwarded.
  std::vector<std::unique_ptr<ExchangeState>> states(route.policies.size());
  for (std::size_t i = 0; i < route.policies.size(); ++i) {
    if (route.policies[i]->on_request(request, states[i]).kind() != Decision::Kind::Forward) return 0;
  }

  FuzzExchange exchange(route, request, http10, states);
  FuzzUpstream upstream(exchange, method == "HEAD");
  fuzz::for_each_read(input, [&](std::string_view read) { upstream.on_read(read); });
  upstream.on_eof();
  exchange.check_client_bytes();
  return 0;
}
