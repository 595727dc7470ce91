#pragma once
// A GET that the proxy makes on a policy's behalf (Decision::fetch, ResponseStep::fetch):
// on the route's upstream pool, with the client's end-to-end fields but no conditionals,
// ranges or body, and the answer buffered up to a limit.

#include <cstddef>
#include <string>
#include <string_view>

#include "policies/policy.h"
#include "proxy/net/upstream.h"

namespace arbiter {

class SubrequestOwner {
 public:
  // The last thing the subrequest does: the owner may destroy it from here.
  virtual void on_fetched(FetchedResponse fetched) = 0;

 protected:
  ~SubrequestOwner() = default;
};

struct SubrequestSpec {
  std::string target;
  const HeaderList& client_headers;
  std::string_view peer_address;
  bool peer_is_trusted_proxy = false;
  std::string_view request_id;
  std::size_t body_limit = 0;
  std::string_view believed_client = {};  // empty: the peer address
};

class Subrequest final : public UpstreamSink {
 public:
  Subrequest(UpstreamPool& pool, const SubrequestSpec& spec, SubrequestOwner& owner);
  ~Subrequest();
  Subrequest(const Subrequest&) = delete;
  Subrequest& operator=(const Subrequest&) = delete;

  void start();

  void on_upstream_connected(UpstreamConnection& connection) override;
  void on_upstream_failed(UpstreamFailure failure, bool connection_was_reused, int error) override;
  void on_upstream_head(int status, HeaderList& headers, BodyFraming framing, std::uint64_t content_length) override;
  void on_upstream_body(std::string_view data) override;
  void on_upstream_complete() override;
  void on_upstream_drained() override {}

 private:
  void connect(std::size_t avoid_server);

  UpstreamPool& pool_;
  SubrequestOwner& owner_;
  std::string target_;
  HeaderList headers_;  // what is sent: the client's fields that make sense on a GET
  std::string peer_address_;
  bool peer_is_trusted_proxy_;
  std::string request_id_;
  std::size_t body_limit_;
  std::string believed_client_;
  UpstreamConnection* upstream_ = nullptr;
  std::size_t last_server_ = SIZE_MAX;
  unsigned attempts_ = 0;
  FetchedResponse result_;
  std::string head_;
};

}  // namespace arbiter
