#include "proxy/net/subrequest.h"

#include <array>

namespace arbiter {

namespace {

// Fields of the client's request that would change what a plain GET returns, or describe a
// body the GET does not have.
constexpr std::array<std::string_view, 11> kNotForwardedOnFetch = {
    "if-match",       "if-none-match",  "if-modified-since", "if-unmodified-since",
    "if-range",       "range",          "content-length",    "content-type",
    "content-encoding", "transfer-encoding", "expect"};

bool forwarded_on_fetch(std::string_view name) {
  for (std::string_view excluded : kNotForwardedOnFetch) {
    if (iequals(name, excluded)) return false;
  }
  return true;
}

}  // namespace

Subrequest::Subrequest(UpstreamPool& pool, const SubrequestSpec& spec, SubrequestOwner& owner)
    : pool_(pool),
      owner_(owner),
      target_(spec.target),
      peer_address_(spec.peer_address),
      peer_is_trusted_proxy_(spec.peer_is_trusted_proxy),
      request_id_(spec.request_id),
      body_limit_(spec.body_limit),
      believed_client_(spec.believed_client) {
  pool_.hold();  // a retry acquires from it again: a retired pool must outlive this
  for (HeaderField field : spec.client_headers) {
    if (forwarded_on_fetch(field.name)) headers_.add(field.name, field.value);
  }
}

Subrequest::~Subrequest() {
  if (upstream_ != nullptr) upstream_->abandon();
  pool_.let_go();
}

void Subrequest::start() { connect(SIZE_MAX); }

void Subrequest::connect(std::size_t avoid_server) {
  ++attempts_;
  UpstreamConnection* connection = pool_.acquire(*this, avoid_server);
  upstream_ = connection;
  last_server_ = connection->server_index();
  if (connection->ready()) on_upstream_connected(*connection);
}

void Subrequest::on_upstream_connected(UpstreamConnection& connection) {
  upstream_ = &connection;
  head_.clear();
  write_upstream_request_head(head_, UpstreamRequest{"GET", target_, headers_, peer_address_, peer_is_trusted_proxy_,
                                                     request_id_, connection.authority(), BodyFraming::None, 0, {},
                                                     believed_client_});
  uv_buf_t head = make_buf(head_.data(), head_.size());
  if (!connection.send(&head, 1)) return;  // on_upstream_failed has run
  upstream_->expect_response(false);
  upstream_->request_finished();
}

void Subrequest::on_upstream_failed(UpstreamFailure failure, bool connection_was_reused, int) {
  upstream_ = nullptr;
  // A GET is always resendable.
  RetryChoice retry = choose_retry(failure, connection_was_reused, true, attempts_, last_server_);
  if (retry.retry) {
    connect(retry.avoid_server);
    return;
  }
  result_ = FetchedResponse{};
  owner_.on_fetched(std::move(result_));
}

void Subrequest::on_upstream_head(int status, HeaderList& headers, BodyFraming, std::uint64_t) {
  result_.reached = true;
  result_.status = status;
  result_.headers = headers;
  result_.body_complete = true;
}

void Subrequest::on_upstream_body(std::string_view data) {
  if (!result_.body_complete) return;
  if (result_.body.size() + data.size() > body_limit_) {
    result_.body_complete = false;
    result_.body.clear();
    return;
  }
  result_.body.append(data);
}

void Subrequest::on_upstream_complete() {
  upstream_ = nullptr;
  owner_.on_fetched(std::move(result_));
}

}  // namespace arbiter
