#pragma once
// Side requests: the requests the proxy makes on a policy's behalf (Decision::call,
// ResponseStep::call, and their one-GET form, fetch), any method, target, fields and body, to
// any upstream pool, several at once for one exchange, each with its own timeout.
//
// A SideRequests batch belongs to one exchange and runs one call at a time: start() sends every
// request of the call at once and the owner hears once, when the last has finished (answered,
// failed, timed out), with all the answers in the order of the specs; all together rather than
// each as it comes, since the policy that asked decides on them together and the exchange
// waits for them anyway. cancel() (or destroying the batch) drops what is outstanding: the
// connections are abandoned and the owner hears nothing more.
//
// Threading: the loop thread of the pools' worker only.

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <uv.h>

#include "proxy/http/headers.h"
#include "proxy/http/side_request_spec.h"
#include "proxy/net/upstream.h"

namespace arbiter {

class SideRequest;

class SideRequestsOwner {
 public:
  // Every request of the call has finished; responses[i] answers specs[i]. The last thing the
  // batch does: the owner may start() it again, cancel or destroy it from here.
  virtual void on_side_responses(std::vector<SideResponse> responses) = 0;

 protected:
  ~SideRequestsOwner() = default;
};

// The exchange the side requests are made for: its forwarding fields, and the client's fields
// for a spec with client_fields. Read during start() only.
struct SideRequestOrigin {
  const HeaderList& client_headers;
  std::string_view peer_address;
  bool peer_is_trusted_proxy = false;
  std::string_view request_id;
  std::string_view believed_client = {};  // empty: the peer address
};

class SideRequests {
 public:
  SideRequests(uv_loop_t* loop, SideRequestsOwner& owner) : loop_(loop), owner_(owner) {}
  ~SideRequests() { cancel(); }
  SideRequests(const SideRequests&) = delete;
  SideRequests& operator=(const SideRequests&) = delete;

  // Sends specs[i] to pools[i] (nullptr: the spec named no upstream of the configuration:
  // answered UnknownUpstream from the loop, nothing sent). Each spec's body_limit must be
  // resolved (not kRouteBodyLimit). Cancels a call still outstanding first. The owner hears
  // from the loop, or before start() returns when every request failed at once (a pooled
  // connection that cannot be written to); an empty call answers at once with no responses.
  void start(std::vector<SideRequestSpec> specs, std::span<UpstreamPool* const> pools,
             const SideRequestOrigin& origin);
  // Drops the outstanding requests; the owner is not called for this call.
  void cancel() noexcept;
  bool outstanding() const noexcept { return remaining_ > 0; }

 private:
  friend class SideRequest;
  // Called by request `index` once, when it has finished and let go of everything.
  void on_done(std::size_t index, SideResponse response);
  void deliver();

  uv_loop_t* loop_;
  SideRequestsOwner& owner_;
  std::vector<SideRequest*> requests_;  // by spec index; nullptr once finished
  std::vector<SideResponse> responses_;
  std::size_t remaining_ = 0;
  bool starting_ = false;  // inside start(): a finished call is delivered when start() ends
};

}  // namespace arbiter
