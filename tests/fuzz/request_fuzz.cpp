// libFuzzer harness: the request path, from the bytes a client sends to what Arbiter answers,
// through the real Exchange (proxy/exchange/exchange.h) with no socket, timer or thread.
//
// The input is what one client connection delivers (see for_each_read for how it is cut into
// reads). FakeExchangeHost (tests/support/fake_exchange_host.h) feeds it to the proxy's own
// RequestParser, as ClientConnection does, and hosts the Exchange: head checks, path
// normalisation, routing, the route's policies (rate limits, in-flight limit, ETag) with a fake
// clock, the upstream request, the response policies and the answer to the client. The
// harness plays the world around it: FakeBackend answers a forwarded request once it has
// arrived whole, and a side request at once; a parked exchange is woken at once when its
// policy woke the waker, else the clock jumps to its deadline.
//
// Besides the sanitizers, properties are checked (a failure traps):
// - what Arbiter sends upstream parses back with llhttp as exactly one request (no smuggling,
//   the client's trailers included), without the fields a policy took out;
// - what Arbiter sends the client parses back as one response per request, in order;
// - a parked exchange has a deadline within the hour (it is never parked forever);
// - the parser and the exchange stop: an input can only drive a bounded amount of work.

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <llhttp.h>

#include "policies/policy.h"
#include "proxy/config/config.h"
#include "proxy/http/forwarding.h"
#include "proxy/http/request_parser.h"
#include "proxy/exchange/exchange.h"
#include "proxy/exchange/router.h"
#include "proxy/exchange/runtime.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/support/fake_exchange_host.h"

namespace arbiter {
namespace {

// Every policy kind, every key kind and both verify modes, with small limits so that inputs
// reach 413/414/431, queues, refusals and table evictions within a few requests (small tables
// are also quick to build for every input).
constexpr std::string_view kConfig = R"toml(
[server]
listen = "127.0.0.1:0"
max_header_bytes = 2048
max_body_bytes = 4096
trusted_proxies = ["10.0.0.0/8", "::1/128"]

[upstream.backend]
servers = ["127.0.0.1:9"]

[[route]]
name = "items"
path = "/items/{id}"
methods = ["GET", "HEAD", "PUT", "PATCH", "DELETE"]
upstream = "backend"
[route.etag]
verify = "upstream"
resource = "/items/{id}"
max_body_bytes = 512
max_queue = 1
queue_timeout = "50ms"
max_entries = 4
[[route.limit]]
name = "per-client"
rate = "20/s"
burst = 5
key = "ip"
max_keys = 4

[[route]]
name = "accounts"
path = "/accounts/{id}"
upstream = "backend"
[route.etag]
require_if_match = true
verify = "cache"
source = "json:/version"
conflict_status = 412
max_entries = 4
[route.concurrency]
max_in_flight = 1
max_queue = 1
queue_timeout = "10ms"
key = "header:X-Tenant"
max_keys = 2

[[route]]
name = "tagged"
path = "/tagged/*"
upstream = "backend"
[route.etag]
source = "auto"
max_queue = 0
max_entries = 4
[[route.limit]]
name = "per-key"
rate = "100/m"
key = "header:X-Api-Key"
methods = ["POST", "PUT"]
max_keys = 4
[[route.limit]]
rate = "1000/h"
key = "global"
max_keys = 1

[[route]]
name = "collection"
path = "/items"
methods = ["GET", "POST"]
upstream = "backend"
)toml";

// The TCP peer: inside trusted_proxies, so X-Forwarded-For is believed (and parsed).
constexpr std::string_view kPeer = "10.0.0.7";
// Rounds of the world answering one input (parks, side requests, upstream answers).
constexpr int kMaxRounds = 4096;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "request_fuzz: %s\n", what);
  __builtin_trap();
}

// A legacy JSON store in memory, like tests/legacy_api: no ETags, except under /tagged/, where
// it sends its own (weak for every third version). "X-Fuzz-Status: NNN" on a request forces the
// status of the answer, so the fuzzer reaches the policies' 3xx/4xx/5xx branches.
class FakeBackend {
 public:
  struct Answer {
    int status = 200;
    HeaderList headers;
    std::string body;
  };

  Answer handle(std::string_view method, std::string_view target, const HeaderList& request_headers,
                std::string_view request_body) {
    std::string_view path = target.substr(0, target.find('?'));
    Answer answer;
    auto found = resources_.find(path);
    if (method == "GET" || method == "HEAD") {
      if (found == resources_.end()) {
        answer.status = 404;
        answer.body = R"({"error":"not found"})";
      } else {
        answer.body = found->second.body;
      }
    } else if (method == "PUT" || method == "PATCH" || method == "POST") {
      answer.status = found == resources_.end() ? 201 : 200;
      Resource& resource = resources_[std::string(path)];
      resource.body.assign(request_body);
      ++resource.version;
      answer.body = R"({"ok":true})";
      found = resources_.find(path);
    } else if (method == "DELETE") {
      answer.status = found == resources_.end() ? 404 : 204;
      if (found != resources_.end()) resources_.erase(found);
      found = resources_.end();
    } else {
      answer.status = 204;
    }
    if (auto forced = request_headers.find("x-fuzz-status"); forced && forced->size() == 3) {
      int status = ((*forced)[0] - '0') * 100 + ((*forced)[1] - '0') * 10 + ((*forced)[2] - '0');
      if (status >= 200 && status <= 599) answer.status = status;
    }
    if (path.starts_with("/tagged/") && found != resources_.end()) {
      std::string tag = "\"v" + std::to_string(found->second.version) + "\"";
      answer.headers.add("ETag", found->second.version % 3 == 0 ? "W/" + tag : tag);
    }
    answer.headers.add("Content-Type", "application/json");
    answer.headers.add("Connection", "keep-alive, X-Backend-Hop");
    answer.headers.add("X-Backend-Hop", "dropped by remove_hop_by_hop");
    if (status_has_no_body(answer.status)) answer.body.clear();
    return answer;
  }

 private:
  struct Resource {
    std::string body;
    std::uint64_t version = 0;
  };
  std::map<std::string, Resource, std::less<>> resources_;
};

// A request Arbiter sent upstream: it must parse back as exactly one message.
struct SentRequest {
  std::string method;
  std::string target;
  HeaderList headers;
  std::string body;
};

SentRequest parse_sent_request(std::string_view bytes) {
  struct State {
    SentRequest request;
    std::string field;
    bool complete = false;
  } state;
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_url = [](llhttp_t* p, const char* at, std::size_t n) {
    static_cast<State*>(p->data)->request.target.append(at, n);
    return 0;
  };
  settings.on_header_field = [](llhttp_t* p, const char* at, std::size_t n) {
    static_cast<State*>(p->data)->field.assign(at, n);
    return 0;
  };
  settings.on_header_value = [](llhttp_t* p, const char* at, std::size_t n) {
    auto* s = static_cast<State*>(p->data);
    s->request.headers.add(s->field, std::string_view(at, n));
    return 0;
  };
  settings.on_body = [](llhttp_t* p, const char* at, std::size_t n) {
    static_cast<State*>(p->data)->request.body.append(at, n);
    return 0;
  };
  settings.on_message_complete = [](llhttp_t* p) {
    static_cast<State*>(p->data)->complete = true;
    return static_cast<int>(HPE_PAUSED);
  };
  llhttp_t parser;
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  parser.data = &state;
  llhttp_errno_t rc = llhttp_execute(&parser, bytes.data(), bytes.size());
  if (rc == HPE_PAUSED_UPGRADE) rc = HPE_PAUSED;  // an upgrade request ends with its head
  if (rc != HPE_PAUSED || !state.complete) {
    std::fprintf(stderr, "sent upstream:\n%.*s\nllhttp: %s\n", static_cast<int>(bytes.size()), bytes.data(),
                 llhttp_errno_name(rc));
    fail("what Arbiter sends upstream does not parse as one request");
  }
  if (llhttp_get_error_pos(&parser) != bytes.data() + bytes.size()) fail("Arbiter sent upstream more than one request");
  state.request.method = llhttp_method_name(static_cast<llhttp_method_t>(parser.method));
  return std::move(state.request);
}

// What Arbiter sent the client: responses, at most one per request, in order (HEAD-aware), a
// 100 Continue allowed before one.
void check_client_stream(std::string_view bytes, const std::vector<bool>& head_requests) {
  struct State {
    const std::vector<bool>* head_requests;
    std::size_t index = 0;
    bool upgraded = false;
  } state{&head_requests};
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_headers_complete = [](llhttp_t* p) {
    auto* s = static_cast<State*>(p->data);
    if (p->status_code == 101) {
      s->upgraded = true;
      return 0;
    }
    bool head = p->status_code >= 200 && s->index < s->head_requests->size() && (*s->head_requests)[s->index];
    return head ? 1 : 0;
  };
  settings.on_message_complete = [](llhttp_t* p) {
    if (p->status_code >= 200) ++static_cast<State*>(p->data)->index;
    return 0;
  };
  llhttp_t parser;
  llhttp_init(&parser, HTTP_RESPONSE, &settings);
  parser.data = &state;
  llhttp_errno_t rc = llhttp_execute(&parser, bytes.data(), bytes.size());
  if (rc == HPE_PAUSED_UPGRADE || state.upgraded) return;  // the rest is the new protocol's
  if (rc != HPE_OK) {
    std::fprintf(stderr, "to the client:\n%.*s\nllhttp: %s\n", static_cast<int>(bytes.size()), bytes.data(),
                 llhttp_errno_name(rc));
    fail("what Arbiter sends the client does not parse as responses");
  }
  if (state.index > head_requests.size()) fail("more responses than requests");
}

// The world around one connection's exchanges: the backend, the clock, the waker.
class FuzzWorld {
 public:
  FuzzWorld(std::shared_ptr<const Runtime> runtime, FakeBackend& backend)
      : host_(std::move(runtime), std::string(kPeer)), backend_(backend) {}

  void on_input(std::string_view read) {
    host_.feed(read);
    play();
  }

  void check() const { check_client_stream(host_.to_client, host_.head_requests); }

 private:
  // Answers whatever the exchange in progress waits for, until it waits for the client.
  void play() {
    for (int round = 0; host_.exchange && !host_.closed; ++round) {
      if (round == kMaxRounds) fail("the exchange does not stop");
      Exchange& exchange = *host_.exchange;
      switch (exchange.stage()) {
        case Exchange::Stage::Parked: {
          if (!host_.timer_due()) fail("a parked exchange has no deadline");
          if (*host_.timer_due() > host_.clock() + std::chrono::hours(1)) fail("a Wait with an unbounded deadline");
          if (host_.waker_->wakes > 0) {
            host_.waker_->wakes = 0;
            host_.deliver_wake();
          } else {
            host_.advance(std::chrono::ceil<Duration>(*host_.timer_due() - host_.clock()));
          }
          break;
        }
        case Exchange::Stage::SideRequest:
          for (std::size_t i = 0; i < host_.side_calls.size(); ++i) {
            if (!host_.side_calls[i].answered) {
              host_.answer_side_request(i, fetch(host_.side_calls[i].spec.target));
              break;
            }
          }
          break;
        case Exchange::Stage::Upstream:
          if (!host_.upstream.finished) return;  // the rest of the body is the client's to send
          answer_upstream();
          break;
        default:
          return;  // the client's turn
      }
    }
  }

  const RouteRuntime& route() { return *host_.exchange->route(); }

  // A side request: a GET of the target, its body kept up to the route's limit.
  FetchedResponse fetch(const std::string& target) {
    FakeBackend::Answer answer = backend_.handle("GET", target, {}, {});
    FetchedResponse fetched;
    fetched.reached = true;
    fetched.status = answer.status;
    remove_hop_by_hop(answer.headers);
    fetched.headers = std::move(answer.headers);
    fetched.body_complete = answer.body.size() <= route().response_body_limit;
    if (fetched.body_complete) fetched.body = std::move(answer.body);
    return fetched;
  }

  void answer_upstream() {
    SentRequest sent = parse_sent_request(host_.upstream.received);
    for (const std::string& omitted : host_.exchange->omitted_fields()) {
      // The sent fields include the trailer section's, parsed alike.
      if (sent.headers.contains(omitted)) fail("a field a policy took out went upstream");
    }
    FakeBackend::Answer answer = backend_.handle(sent.method, sent.target, sent.headers, sent.body);
    remove_hop_by_hop(answer.headers);
    if (answer.headers.contains("x-backend-hop")) fail("a field named in Connection survived remove_hop_by_hop");
    if (status_has_no_body(answer.status) || sent.method == "HEAD") answer.body.clear();
    host_.respond(answer.status, std::move(answer.headers), answer.body);
  }

  testing::FakeExchangeHost host_;
  FakeBackend& backend_;
};

}  // namespace
}  // namespace arbiter

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace arbiter;
  static const Config config = fuzz::fixed_config(kConfig);
  // A fresh Runtime (fresh buckets, ETag table, slots) for every input, so that an input alone
  // reproduces what it did.
  RuntimeState state;
  auto runtime = std::make_shared<const Runtime>(config, state);
  FakeBackend backend;
  {
    FuzzWorld world(runtime, backend);
    fuzz::for_each_read(std::string_view(reinterpret_cast<const char*>(data), size),
                        [&](std::string_view read) { world.on_input(read); });
    world.check();
  }
  return 0;
}
