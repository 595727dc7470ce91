#include "proxy/net/side_request.h"

#include <array>
#include <utility>

#include "proxy/http/forwarding.h"

namespace arbiter {

namespace {

// Fields of the client's request that would change what a plain request returns, or describe
// a body that is not the side request's (SideRequestSpec::client_fields). Hop-by-hop and framing
// fields (Content-Length, Transfer-Encoding) and Expect are not listed: write_upstream_request_head
// drops them from every request it writes.
constexpr std::array<std::string_view, 8> kNotInherited = {
    "if-match", "if-none-match", "if-modified-since", "if-unmodified-since",
    "if-range", "range",         "content-type",      "content-encoding"};

bool inherited(std::string_view name) {
  for (std::string_view excluded : kNotInherited) {
    if (iequals(name, excluded)) return false;
  }
  return true;
}

bool resendable(const SideRequestSpec& spec) { return is_idempotent_method(spec.method) && spec.body.empty(); }

// RFC 9110 section 8.6: a POST, PUT or PATCH without a body still says Content-Length: 0.
bool sends_length(const SideRequestSpec& spec) {
  return !spec.body.empty() || spec.method == "POST" || spec.method == "PUT" || spec.method == "PATCH";
}

SideFailure side_failure(UpstreamFailure failure) noexcept {
  switch (failure) {
    case UpstreamFailure::ConnectFailed:
    case UpstreamFailure::ConnectTimeout: return SideFailure::ConnectFailed;
    case UpstreamFailure::ResponseTimeout: return SideFailure::Timeout;
    case UpstreamFailure::BadResponse: return SideFailure::BadResponse;
    case UpstreamFailure::ClosedBeforeResponse:
    case UpstreamFailure::ClosedDuringResponse: return SideFailure::Reset;
  }
  return SideFailure::Reset;
}

}  // namespace

// One request of a batch. Allocated by SideRequests::start; it owns a timer (the spec's timeout,
// or the deferred answer for an unknown upstream), so it frees itself in the timer's close
// callback, after release(). From release() on it touches neither the batch, nor the pool, nor
// a connection: a cancelled one can outlive its batch and exchange safely.
class SideRequest final : public UpstreamSink {
 public:
  SideRequest(SideRequests& batch, std::size_t index, uv_loop_t* loop, UpstreamPool* pool, SideRequestSpec spec,
              const SideRequestOrigin& origin)
      : batch_(&batch),
        index_(index),
        pool_(pool),
        spec_(std::move(spec)),
        peer_address_(origin.peer_address),
        peer_is_trusted_proxy_(origin.peer_is_trusted_proxy),
        request_id_(origin.request_id),
        believed_client_(origin.believed_client) {
    uv_timer_init(loop, &timer_);
    timer_.data = this;
    if (pool_ != nullptr) pool_->hold();  // a retry acquires from it again: a retired pool must outlive this
    if (spec_.client_fields) {
      for (HeaderField field : origin.client_headers) {
        if (inherited(field.name) && !spec_.fields.contains(field.name)) fields_.add(field.name, field.value);
      }
      // The client's Connection options end at the client's hop: applied here, to its fields
      // only, they never take away a field the spec sets.
      remove_hop_by_hop(fields_);
    }
    for (HeaderField field : spec_.fields) fields_.add(field.name, field.value);
  }
  SideRequest(const SideRequest&) = delete;
  SideRequest& operator=(const SideRequest&) = delete;

  void start() {
    if (pool_ == nullptr) {
      uv_timer_start(&timer_, on_timer, 0, 0);  // answered from the loop, not inside start()
      return;
    }
    if (spec_.timeout.count() > 0) uv_timer_start(&timer_, on_timer, static_cast<std::uint64_t>(spec_.timeout.count()), 0);
    connect(SIZE_MAX);
  }

  // The batch no longer wants the answer.
  void cancel() noexcept { release(); }

  void on_upstream_connected(UpstreamConnection& connection) override {
    upstream_ = &connection;
    head_.clear();
    bool length = sends_length(spec_);
    write_upstream_request_head(
        head_, UpstreamRequest{spec_.method, spec_.target, fields_, peer_address_, peer_is_trusted_proxy_, request_id_,
                               connection.authority(), length ? BodyFraming::ContentLength : BodyFraming::None,
                               spec_.body.size(), {}, believed_client_});
    std::array<uv_buf_t, 2> bufs = {make_buf(head_.data(), head_.size()), make_buf(spec_.body.data(), spec_.body.size())};
    if (!connection.send(bufs.data(), spec_.body.empty() ? 1 : 2)) return;  // on_upstream_failed has run
    connection.expect_response(spec_.method == "HEAD");
    connection.request_finished();
  }

  void on_upstream_failed(UpstreamFailure failure, bool connection_was_reused, int error) override {
    upstream_ = nullptr;
    RetryChoice retry = choose_retry(failure, connection_was_reused, resendable(spec_), attempts_, last_server_);
    if (retry.retry) {
      connect(retry.avoid_server);
      return;
    }
    finish(SideResponse{false, 0, {}, {}, false, side_failure(failure), describe(failure, error)});
  }

  void on_upstream_head(int status, HeaderList& headers, BodyFraming, std::uint64_t) override {
    result_.reached = true;
    result_.status = status;
    result_.headers = headers;
    result_.body_complete = true;
  }

  void on_upstream_body(std::string_view data) override {
    // An answer over the limit is read to its end (the connection stays reusable), not kept.
    if (!result_.body_complete) return;
    if (result_.body.size() + data.size() > spec_.body_limit) {
      result_.body_complete = false;
      result_.body.clear();
      return;
    }
    result_.body.append(data);
  }

  void on_upstream_complete() override {
    upstream_ = nullptr;
    if (!result_.body_complete) {
      result_.failure = SideFailure::TooLarge;
      result_.detail = "the answer's body is over the side request's limit of " + std::to_string(spec_.body_limit) +
                       " bytes";
    }
    finish(std::move(result_));
  }

  void on_upstream_drained() override {}

 private:
  ~SideRequest() = default;  // by on_closed only

  void connect(std::size_t avoid_server) {
    ++attempts_;
    UpstreamConnection* connection = pool_->acquire(*this, avoid_server);
    upstream_ = connection;
    last_server_ = connection->server_index();
    if (connection->ready()) on_upstream_connected(*connection);
  }

  void finish(SideResponse response) {
    SideRequests* batch = batch_;
    std::size_t index = index_;
    release();
    if (batch != nullptr) batch->on_done(index, std::move(response));
  }

  // Lets go of the batch, the connection and the pool; frees this once the timer has closed.
  void release() noexcept {
    if (released_) return;
    released_ = true;
    batch_ = nullptr;
    if (upstream_ != nullptr) {
      UpstreamConnection* upstream = upstream_;
      upstream_ = nullptr;
      upstream->abandon();
    }
    if (pool_ != nullptr) pool_->let_go();
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_closed);
  }

  static void on_timer(uv_timer_t* timer) {
    auto* self = static_cast<SideRequest*>(timer->data);
    if (self->pool_ == nullptr) {
      self->finish(SideResponse{false, 0, {}, {}, false, SideFailure::UnknownUpstream,
                                "no upstream named '" + self->spec_.upstream + "' in the configuration"});
      return;
    }
    self->finish(SideResponse{false, 0, {}, {}, false, SideFailure::Timeout,
                              "no whole answer within the side request's timeout of " +
                                  std::to_string(self->spec_.timeout.count()) + "ms"});
  }

  static void on_closed(uv_handle_t* handle) { delete static_cast<SideRequest*>(handle->data); }

  SideRequests* batch_;  // null once released
  std::size_t index_;
  UpstreamPool* pool_;   // null: unknown upstream
  SideRequestSpec spec_;
  HeaderList fields_;    // what is sent, before Host, framing and the forwarding fields
  std::string peer_address_;
  bool peer_is_trusted_proxy_;
  std::string request_id_;
  std::string believed_client_;
  uv_timer_t timer_{};
  UpstreamConnection* upstream_ = nullptr;
  std::size_t last_server_ = SIZE_MAX;
  unsigned attempts_ = 0;
  bool released_ = false;
  SideResponse result_;
  std::string head_;
};

void SideRequests::start(std::vector<SideRequestSpec> specs, std::span<UpstreamPool* const> pools,
                         const SideRequestOrigin& origin) {
  cancel();
  std::size_t count = specs.size();
  requests_.assign(count, nullptr);
  responses_.assign(count, SideResponse{});
  remaining_ = count;
  starting_ = true;
  for (std::size_t i = 0; i < count; ++i) {
    requests_[i] = new SideRequest(*this, i, loop_, pools[i], std::move(specs[i]), origin);
  }
  // Created first, started second: one finishing at once leaves the others' slots intact.
  for (std::size_t i = 0; i < count; ++i) {
    if (requests_[i] != nullptr) requests_[i]->start();
  }
  starting_ = false;
  if (remaining_ == 0) deliver();
}

void SideRequests::cancel() noexcept {
  for (SideRequest* request : requests_) {
    if (request != nullptr) request->cancel();
  }
  requests_.clear();
  responses_.clear();
  remaining_ = 0;
}

void SideRequests::on_done(std::size_t index, SideResponse response) {
  responses_[index] = std::move(response);
  requests_[index] = nullptr;
  if (--remaining_ == 0 && !starting_) deliver();
}

void SideRequests::deliver() {
  std::vector<SideResponse> responses = std::move(responses_);
  responses_.clear();
  requests_.clear();
  owner_.on_side_responses(std::move(responses));
}

}  // namespace arbiter
