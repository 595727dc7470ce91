// libFuzzer harness: the request path, from the bytes a client sends to what the request-phase
// policies decide, with no socket, timer or thread.
//
// The input is what one client connection delivers (see for_each_read for how it is cut into
// reads). FuzzConnection drives the proxy's own RequestParser (proxy/http/request_parser.h: llhttp
// with max_header_bytes, max_body_bytes, obs-fold, and the input kept across pauses) and
// check_request_head, routes with the Router
// of a Runtime built from a fixed configuration, and runs the route's policy chain with a fake
// clock. The steps around them are ClientConnection's (proxy/net/client_connection.cpp), which owns
// a uv_tcp_t; they are followed here under the same names (on_parse_paused, begin_exchange,
// run_request_policies, reply, finish_exchange): keep the two in step.
// What the real flow does with a socket is replaced: the upstream is FakeBackend, which answers
// once the whole request has arrived; a policy's fetch is answered by it at once; a Wait is
// over at once when the policy woke the waker, else the clock jumps to its deadline.
//
// Besides the sanitizers, three properties are checked (a failure traps):
// - the head Arbiter would send upstream, and the head it would send the client, parse back
//   with llhttp as exactly one message head, with the framing Arbiter chose (no smuggling);
//   so does the end of a chunked request body with the client's trailer fields;
// - a policy that answers Wait gives up by its deadline (the request is never parked forever);
// - the policy chain and the parser stop: an input can only drive a bounded amount of work.

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
#include "proxy/http/path_normalization.h"
#include "proxy/exchange/router.h"
#include "proxy/exchange/runtime.h"
#include "tests/fuzz/fuzz_support.h"

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
// As in client_connection.cpp.
constexpr std::uint64_t kMaxDrainedBody = 1u << 20;
// Rounds of Wait/Fetch one policy may take for one request before the harness calls it a hang.
constexpr int kMaxPolicyRounds = 16;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "request_fuzz: %s\n", what);
  __builtin_trap();
}

// client_connection.cpp's rule for a client-supplied X-Request-Id (private there).
bool acceptable_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' ||
           c == '.' || c == ':';
  });
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

// A head Arbiter wrote must read back as exactly one message head with the framing it meant.
void check_head_parses(std::string_view head, llhttp_type_t type, BodyFraming framing, std::uint64_t length) {
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_headers_complete = [](llhttp_t*) { return static_cast<int>(HPE_PAUSED); };
  llhttp_t parser;
  llhttp_init(&parser, type, &settings);
  llhttp_errno_t rc = llhttp_execute(&parser, head.data(), head.size());
  if (rc != HPE_PAUSED) {
    std::fprintf(stderr, "head:\n%.*s\nllhttp: %s\n", static_cast<int>(head.size()), head.data(),
                 llhttp_get_error_reason(&parser) ? llhttp_get_error_reason(&parser) : llhttp_errno_name(rc));
    fail("a head Arbiter writes does not parse");
  }
  if (llhttp_get_error_pos(&parser) != head.data() + head.size()) fail("a head Arbiter writes ends early");
  bool chunked = (parser.flags & F_CHUNKED) != 0;
  bool has_length = (parser.flags & F_CONTENT_LENGTH) != 0;
  if (chunked != (framing == BodyFraming::Chunked)) fail("the written head's chunked framing is not the one chosen");
  if (framing == BodyFraming::ContentLength && (!has_length || parser.content_length != length)) {
    fail("the written head's Content-Length is not the one chosen");
  }
  if (framing != BodyFraming::ContentLength && has_length) fail("the written head has a Content-Length not chosen");
}

// The end of a chunked body Arbiter wrote (write_last_chunk) must read back as exactly the end of
// one message: a trailer field cannot smuggle a second one.
void check_last_chunk_parses(std::string_view last_chunk) {
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_message_complete = [](llhttp_t*) { return static_cast<int>(HPE_PAUSED); };
  llhttp_t parser;
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  std::string message = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  message.append(last_chunk);
  llhttp_errno_t rc = llhttp_execute(&parser, message.data(), message.size());
  if (rc != HPE_PAUSED) {
    std::fprintf(stderr, "last chunk:\n%.*s\nllhttp: %s\n", static_cast<int>(last_chunk.size()), last_chunk.data(),
                 llhttp_errno_name(rc));
    fail("a last chunk Arbiter writes does not parse");
  }
  if (llhttp_get_error_pos(&parser) != message.data() + message.size()) fail("a last chunk Arbiter writes ends early");
}

bool head_has_field(std::string_view head, std::string_view name) {
  for (std::size_t line = head.find("\r\n"); line != std::string_view::npos; line = head.find("\r\n", line + 2)) {
    std::string_view rest = head.substr(line + 2);
    if (rest.size() > name.size() && rest[name.size()] == ':' && iequals(rest.substr(0, name.size()), name)) return true;
  }
  return false;
}

// ClientConnection without the socket: the same parser and exchange steps, under the same
// names, with the I/O replaced as the file comment says.
class FuzzConnection final : public RequestEvents {
 public:
  FuzzConnection(const Runtime& runtime, fuzz::FakeClock& clock, FakeBackend& backend)
      : runtime_(runtime), clock_(clock), backend_(backend), waker_(std::make_shared<fuzz::RecordingWaker>()) {
    parser_.set_limits({server().max_header_bytes, server().max_body_bytes});
  }

  bool closed() const noexcept { return phase_ == Phase::Closed; }

  // One read from the socket (ClientConnection::on_input).
  void on_input(std::string_view data) {
    if (phase_ == Phase::Closed) return;
    parser_.feed(data.data(), data.size());
  }

 private:
  enum class Phase : std::uint8_t { Idle, ReadingHead, Exchange, Closed };

  const ServerConfig& server() const { return runtime_.config().server; }

  // ---- input (the parser's RequestEvents)

  bool takes_input() const override { return phase_ != Phase::Closed; }

  void on_parse_paused() override {
    if (++executions_ > 100000) fail("the parser does not stop");
    if (parser_.head_complete() && phase_ == Phase::ReadingHead) {
      begin_exchange();
    } else if (parser_.message_complete() && response_complete_) {
      finish_exchange();
    } else if (parser_.message_complete() && forwarding_) {
      upstream_answers();  // the harness's backend answers once it has the whole request
    }
  }

  void resume_parser() {
    if (phase_ != Phase::Closed) parser_.resume();
  }

  void on_parse_error(llhttp_errno_t error) override {
    client_keep_alive_ = false;
    if (response_complete_) {
      phase_ = Phase::Closed;  // an answer is out; only closing can tell the client
      return;
    }
    phase_ = Phase::Exchange;
    forwarding_ = false;  // the upstream is abandoned: it never sees the rest
    reply_problem(parser_.problem(error), {});
  }

  // ---- request events (RequestEvents)

  void on_request_begin() override { phase_ = Phase::ReadingHead; }

  bool on_request_body(std::string_view piece) override {
    if (forwarding_) forwarded_body_.append(piece);
    return phase_ != Phase::Closed;
  }

  // ClientConnection::on_request_complete: a chunked body's end goes upstream with the client's
  // trailer fields that may cross.
  void on_request_complete() override {
    if (!forwarding_ || head_.framing != BodyFraming::Chunked) return;
    scratch_last_chunk_.clear();
    write_last_chunk(scratch_last_chunk_, head_.trailers, omit_fields_);
    check_last_chunk_parses(scratch_last_chunk_);
    for (const std::string& omitted : omit_fields_) {
      if (head_has_field(scratch_last_chunk_, omitted)) fail("a field a policy took out went upstream as a trailer");
    }
  }

  // ---- the exchange (ClientConnection::begin_exchange and validate_request_head)

  void begin_exchange() {
    phase_ = Phase::Exchange;
    client_keep_alive_ = head_.keep_alive;
    if (auto id = head_.headers.find("x-request-id"); id && acceptable_request_id(*id)) {
      request_id_.assign(*id);
    } else {
      request_id_ = "fuzz-" + std::to_string(++request_count_);
    }
    if (!validate_request_head()) return;
    if (head_.framing == BodyFraming::ContentLength && head_.content_length > server().max_body_bytes) {
      client_keep_alive_ = false;
      reply_problem(Problem::make("content-too-large", 413, "Content too large", "Content-Length too large."), {});
      return;
    }
    // ClientConnection::normalize_target, with a property: the normal form is a fixed point.
    std::string_view raw(head_.target);
    std::size_t query_at = std::min(raw.find('?'), raw.size());
    std::string why;
    if (!normalize_path(raw.substr(0, query_at), target_, why)) {
      reply_problem(Problem::make("malformed-path", 400, "Malformed path", why), {});
      return;
    }
    if (std::string again; !normalize_path(target_, again, why) || again != target_) fail("normalize_path is not idempotent");
    path_length_ = target_.size();
    target_.append(raw.substr(query_at));
    std::string_view path = std::string_view(target_).substr(0, path_length_);
    RouteMatch match;
    std::string allowed;
    switch (runtime_.router().match(head_.method, path, match, &allowed)) {
      case Router::Outcome::NotFound:
        reply_problem(Problem::make("route-not-found", 404, "No route", "No route matches " + std::string(path)), {});
        return;
      case Router::Outcome::MethodNotAllowed:
        if (allowed.empty()) fail("405 with an empty Allow");
        reply_problem(Problem::make("method-not-allowed", 405, "Method not allowed", "Not " + std::string(head_.method)),
                      HeaderList{{"Allow", allowed}});
        return;
      case Router::Outcome::Matched:
        break;
    }
    route_ = &runtime_.route(match.route_index);
    params_ = std::move(match.params);
    policy_states_.resize(route_->policies.size());
    peer_is_trusted_proxy_ = false;
    for (const Cidr& cidr : server().trusted_proxies) peer_is_trusted_proxy_ = peer_is_trusted_proxy_ || cidr.contains(kPeer);
    if (peer_is_trusted_proxy_) believed_client_ = believed_client_address(kPeer, head_.headers, server().trusted_proxies);
    upgrade_ = head_.upgrade && route_->config->websocket;
    run_request_policies();
  }

  bool validate_request_head() {
    if (std::optional<Problem> refused = check_request_head(head_)) {
      client_keep_alive_ = false;
      reply_problem(*refused, {});
      return false;
    }
    expect_continue_ = expects_continue(head_);
    return true;
  }

  RequestView request_view() const {
    std::string_view target(target_);
    std::string_view query = target.substr(path_length_);
    return RequestView{head_.method,
                       target,
                       target.substr(0, path_length_),
                       query.empty() ? query : query.substr(1),
                       head_.headers,
                       believed_client_.empty() ? kPeer : std::string_view(believed_client_),
                       route_->config->name,
                       params_,
                       request_id_,
                       clock_.now()};
  }

  // ClientConnection::run_request_policies, with each policy's Wait and Fetch rounds played
  // out at once (on_woken / the timer, and on_fetched).
  void run_request_policies() {
    const auto& policies = route_->policies;
    for (; policy_index_ < policies.size(); ++policy_index_) {
      Policy& policy = *policies[policy_index_];
      std::unique_ptr<ExchangeState>& state = policy_states_[policy_index_];
      auto view = [&] {
        RequestView v = request_view();
        v.waker = waker_;
        return v;
      };
      Decision decision = policy.on_request(view(), state);
      for (int round = 0; decision.kind() == Decision::Kind::Wait || decision.kind() == Decision::Kind::Fetch;
           ++round) {
        if (round == kMaxPolicyRounds) fail("a policy keeps the request waiting or fetching");
        if (decision.kind() == Decision::Kind::Fetch) {
          FetchedResponse fetched = fetch(decision.fetch_target());
          decision = policy.on_fetched(view(), fetched, state);
          continue;
        }
        if (decision.deadline() > clock_.now() + std::chrono::hours(1)) fail("a Wait with an unbounded deadline");
        if (!waker_->woken) clock_.advance_to(decision.deadline());
        waker_->woken = false;
        decision = policy.on_request(view(), state);
      }
      if (decision.kind() == Decision::Kind::Reply) {
        if (decision.problem()) {
          reply_problem(*decision.problem(), decision.headers());
        } else {
          reply(decision.status(), decision.content_type(), decision.headers(), decision.body());
        }
        return;
      }
      for (const std::string& field : decision.strip_fields()) omit_fields_.push_back(field);
    }
    connect_upstream();
  }

  // The proxy's subrequest: a GET of the target, its body kept up to the route's limit.
  FetchedResponse fetch(const std::string& target) {
    FakeBackend::Answer answer = backend_.handle("GET", target, head_.headers, {});
    FetchedResponse fetched;
    fetched.reached = true;
    fetched.status = answer.status;
    remove_hop_by_hop(answer.headers);
    fetched.headers = std::move(answer.headers);
    fetched.body_complete = answer.body.size() <= route_->response_body_limit;
    if (fetched.body_complete) fetched.body = std::move(answer.body);
    return fetched;
  }

  void connect_upstream() {
    forwarding_ = true;
    forwarded_body_.clear();
    scratch_head_.clear();
    write_upstream_request_head(scratch_head_, UpstreamRequest{head_.method, target_, head_.headers, kPeer,
                                                               peer_is_trusted_proxy_, request_id_, "127.0.0.1:9",
                                                               head_.framing, head_.content_length, omit_fields_,
                                                               believed_client_, upgrade_});
    check_head_parses(scratch_head_, HTTP_REQUEST, head_.framing, head_.content_length);
    for (const std::string& omitted : omit_fields_) {
      if (head_has_field(scratch_head_, omitted)) fail("a field a policy took out went upstream");
    }
    expect_continue_ = false;  // the 100 Continue would be sent here
    if (!parser_.message_complete()) {
      resume_parser();  // the body streams on; upstream_answers() runs when it is complete
    } else {
      upstream_answers();
    }
  }

  // ---- the response (ClientConnection::on_upstream_head .. on_upstream_complete)

  void upstream_answers() {
    forwarding_ = false;
    FakeBackend::Answer answer = backend_.handle(head_.method, target_, head_.headers, forwarded_body_);
    response_status_ = answer.status;
    remove_hop_by_hop(answer.headers);
    if (answer.headers.contains("x-backend-hop")) fail("a field named in Connection survived remove_hop_by_hop");
    BodyFraming framing = status_has_no_body(answer.status) ? BodyFraming::None : BodyFraming::ContentLength;
    if (route_->policies.empty()) {
      send_response_head(answer.headers, framing, answer.body.size());
      response_complete_ = true;
      if (parser_.message_complete() || !response_keep_alive_) finish_exchange();
      return;
    }
    held_headers_ = answer.headers;
    bool body_follows = framing != BodyFraming::None && head_.method != "HEAD";
    if (!body_follows || answer.body.size() <= route_->response_body_limit) {
      if (body_follows) buffered_body_ = std::move(answer.body);
      buffering_body_ = body_follows;
      run_response_policies(true);
      bool buffered = buffering_body_;
      buffering_body_ = false;
      send_response_head(held_headers_, buffered ? BodyFraming::ContentLength : framing,
                         buffered ? buffered_body_.size() : answer.body.size());
    } else {
      body_withheld_ = true;  // release_held_head_withheld: the policies see the head only
      run_response_policies(false);
      send_response_head(held_headers_, framing, answer.body.size());
    }
    response_complete_ = true;
    if (parser_.message_complete() || !response_keep_alive_) finish_exchange();
  }

  void run_response_policies(bool may_fetch) {
    const auto& policies = route_->policies;
    for (std::size_t index = policies.size(); index > 0; --index) {
      std::size_t i = index - 1;
      RequestView view = request_view();
      ResponseView response{response_status_, held_headers_, buffering_body_ ? &buffered_body_ : nullptr,
                            body_withheld_, view.now};
      ResponseStep step = policies[i]->on_response(view, response, policy_states_[i].get());
      response_status_ = response.status;
      if (step.fetch_first && may_fetch) {
        FetchedResponse fetched = fetch(step.fetch_target);
        ResponseView again{response_status_, held_headers_, buffering_body_ ? &buffered_body_ : nullptr,
                           body_withheld_, view.now};
        policies[i]->on_response_fetched(view, again, fetched, policy_states_[i].get());
        response_status_ = again.status;
      }
    }
  }

  void send_response_head(HeaderList& headers, BodyFraming upstream_framing, std::uint64_t content_length) {
    bool no_body = head_.method == "HEAD" || status_has_no_body(response_status_);
    response_keep_alive_ = client_keep_alive_ && parser_.message_complete();
    BodyFraming announced = upstream_framing;
    if (no_body) {
      announced = upstream_framing == BodyFraming::ContentLength && head_.method == "HEAD" ? BodyFraming::ContentLength
                                                                                     : BodyFraming::None;
    } else if (upstream_framing == BodyFraming::Chunked || upstream_framing == BodyFraming::UntilClose) {
      announced = head_.http10 ? BodyFraming::UntilClose : BodyFraming::Chunked;
      if (head_.http10) response_keep_alive_ = false;
    }
    headers.add("Via", "1.1 arbiter");
    write_client_head(headers, announced, content_length);
  }

  void write_client_head(const HeaderList& headers, BodyFraming framing, std::uint64_t content_length) {
    scratch_head_.clear();
    write_client_response_head(scratch_head_, ClientResponse{response_status_, headers, framing, content_length,
                                                             response_keep_alive_, head_.http10, request_id_});
    check_head_parses(scratch_head_, HTTP_RESPONSE, framing, content_length);
  }

  // ---- answers made here (ClientConnection::reply)

  void reply_problem(const Problem& problem, const HeaderList& extra) {
    std::string body = problem.to_json(request_id_);
    reply(problem.status, kProblemContentType, extra, body);
  }

  void reply(int status, std::string_view content_type, const HeaderList& extra, std::string_view body) {
    response_status_ = status;
    bool unread_body = !parser_.message_complete() && head_.framing != BodyFraming::None;
    bool drain = unread_body && !expect_continue_ && !forwarding_ &&
                 (head_.framing == BodyFraming::Chunked || head_.content_length <= kMaxDrainedBody);
    response_keep_alive_ = client_keep_alive_ && (!unread_body || drain) && parser_.head_complete();
    HeaderList headers = extra;
    if (!content_type.empty()) headers.add("Content-Type", content_type);
    headers.add("Cache-Control", "no-store");
    BodyFraming framing = status_has_no_body(status) ? BodyFraming::None : BodyFraming::ContentLength;
    write_client_head(headers, framing, body.size());
    response_complete_ = true;
    if (response_keep_alive_ && !parser_.message_complete()) {
      resume_parser();  // reads and drops the rest of the body, then finish_exchange
    } else {
      finish_exchange();
    }
  }

  // ---- end of an exchange

  void finish_exchange() {
    if (phase_ == Phase::Closed) return;
    bool keep_alive = response_keep_alive_;
    reset_exchange();
    if (!keep_alive) {
      phase_ = Phase::Closed;
      return;
    }
    phase_ = Phase::Idle;
    clock_.advance(std::chrono::milliseconds(7));  // time passes between requests
    resume_parser();
  }

  void reset_exchange() {
    // "X-Fuzz-Hold" keeps this exchange's policy state (its slot, its write turn) until the next
    // exchange ends, like a slow request on another connection, so that queues fill up.
    bool hold = route_ != nullptr && head_.headers.contains("x-fuzz-hold");
    held_states_.clear();
    if (hold) held_states_.swap(policy_states_);
    policy_states_.clear();
    policy_index_ = 0;
    omit_fields_.clear();
    route_ = nullptr;
    params_.clear();
    parser_.next_request();
    expect_continue_ = false;
    request_id_.clear();
    believed_client_.clear();
    upgrade_ = false;
    forwarding_ = false;
    forwarded_body_.clear();
    response_status_ = 0;
    response_complete_ = false;
    buffering_body_ = false;
    body_withheld_ = false;
    held_headers_.clear();
    buffered_body_.clear();
  }

  const Runtime& runtime_;
  fuzz::FakeClock& clock_;
  FakeBackend& backend_;
  std::shared_ptr<fuzz::RecordingWaker> waker_;
  Phase phase_ = Phase::Idle;

  RequestParser parser_{*this};
  RequestHead& head_ = parser_.head();
  unsigned executions_ = 0;  // pauses, a bound on the work one input drives
  unsigned request_count_ = 0;

  bool client_keep_alive_ = true;
  bool expect_continue_ = false;
  std::string request_id_;
  std::string believed_client_;
  bool upgrade_ = false;  // the request's upgrade goes upstream (a 101 would start a tunnel)
  std::string scratch_last_chunk_;
  bool peer_is_trusted_proxy_ = false;
  const RouteRuntime* route_ = nullptr;
  std::string target_;  // normalised path and the query as sent; params_ point into it
  std::size_t path_length_ = 0;
  std::vector<PathParam> params_;
  std::vector<std::unique_ptr<ExchangeState>> policy_states_;
  std::vector<std::unique_ptr<ExchangeState>> held_states_;
  std::size_t policy_index_ = 0;
  std::vector<std::string> omit_fields_;

  bool forwarding_ = false;
  std::string forwarded_body_;
  int response_status_ = 0;
  bool response_complete_ = false;
  bool response_keep_alive_ = true;
  bool buffering_body_ = false;
  bool body_withheld_ = false;
  HeaderList held_headers_;
  std::string buffered_body_;
  std::string scratch_head_;
};

}  // namespace
}  // namespace arbiter

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace arbiter;
  static const Config config = fuzz::fixed_config(kConfig);
  // A fresh Runtime (fresh buckets, ETag table, slots) for every input, so that an input alone
  // reproduces what it did.
  RuntimeState state;
  Runtime runtime(config, state);
  fuzz::FakeClock clock;
  FakeBackend backend;
  FuzzConnection connection(runtime, clock, backend);
  fuzz::for_each_read(std::string_view(reinterpret_cast<const char*>(data), size),
                      [&](std::string_view read) { connection.on_input(read); });
  return 0;
}
