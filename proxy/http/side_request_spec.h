#pragma once
// Side requests as policies see them: what a policy asks the proxy to send on an exchange's
// behalf (Decision::call, ResponseStep::call in policies/policy.h) and what comes back
// (Policy::on_side_responses). Plain data, no I/O: proxy/net/side_request.h makes the requests.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "proxy/http/headers.h"

namespace arbiter {

// One request to an upstream of the configuration in force.
//
// On the wire: `METHOD target HTTP/1.1`, then the fields (the client's first when
// client_fields is set, less any name `fields` sets, then `fields` as given), Host (the
// upstream's host:port unless a field sets it), the forwarding fields Arbiter adds to every
// request it forwards (X-Forwarded-For/-Proto/-Host, Forwarded, X-Real-IP, Via, X-Request-Id:
// the exchange's client and request id, never taken from `fields`), and Content-Length for the
// body. Hop-by-hop and framing fields in `fields` are not sent.
struct SideRequestSpec {
  // body_limit: the largest body the route's policies read (Policy::response_body_limit).
  static constexpr std::size_t kRouteBodyLimit = SIZE_MAX;

  std::string method = "GET";
  std::string target;  // origin-form: the path and the query, e.g. "/items/1?full=1"
  HeaderList fields;
  // Sent with Content-Length when not empty; an empty POST, PUT or PATCH says Content-Length: 0.
  std::string body;
  // The NAME of an [upstream.NAME]; empty: the route's own. A name the configuration in force
  // does not have fails the request (SideFailure::UnknownUpstream), nothing is sent.
  std::string upstream;
  // The whole request, from its start to the last byte of the answer; 0: no limit of its own
  // (the upstream's connect_timeout and response_timeout still apply).
  std::chrono::milliseconds timeout{0};
  // The answer's body is kept up to this many bytes; a larger one is read to its end and
  // dropped (SideFailure::TooLarge).
  std::size_t body_limit = kRouteBodyLimit;
  // Also send the client's end-to-end request fields, less those that would change what a
  // plain request returns or describe a body (conditionals, Range, Content-*, Expect).
  bool client_fields = false;

  // What Decision::fetch sends: a GET of `target` on the route's upstream, as the client would
  // make it without its conditionals.
  static SideRequestSpec fetch(std::string target) {
    SideRequestSpec spec;
    spec.target = std::move(target);
    spec.client_fields = true;
    return spec;
  }
};

// Why a side request has no (whole) answer.
enum class SideFailure : std::uint8_t {
  None,             // answered; the body is whole
  UnknownUpstream,  // spec.upstream names no upstream of the configuration in force
  ConnectFailed,    // no connection: refused, unreachable, or the upstream's connect_timeout
  Timeout,          // spec.timeout passed, or the upstream's response_timeout
  Reset,            // the upstream closed or broke the connection before the answer was whole
  BadResponse,      // not HTTP, or framing Arbiter refuses
  TooLarge,         // answered (reached, status, headers), but the body was over spec.body_limit
};

// The answer to one SideRequestSpec.
struct SideResponse {
  bool reached = false;    // an HTTP answer came (status and headers are its)
  int status = 0;
  HeaderList headers;      // hop-by-hop fields removed
  std::string body;
  bool body_complete = false;  // false: no answer, or larger than body_limit (body empty)
  SideFailure failure = SideFailure::None;
  std::string detail;      // the failure in words, e.g. "could not connect to the upstream: ECONNREFUSED, ..."
};

}  // namespace arbiter
