#pragma once
// How a message is rewritten as it crosses the proxy: hop-by-hop fields removed, forwarding
// fields added, framing chosen. Pure functions over HeaderList, so every rule is unit-tested.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/headers.h"
#include "proxy/http/address.h"

namespace arbiter {

// How a message body is delimited on the wire.
enum class BodyFraming : std::uint8_t {
  None,           // no body (or a HEAD/204/304 answer)
  ContentLength,  // exactly `content_length` bytes
  Chunked,        // Transfer-Encoding: chunked
  UntilClose,     // HTTP/1.0 style: the body ends when the connection closes
};

// Removes Connection, the fields it names, and the other hop-by-hop fields of RFC 9110
// section 7.6.1 (Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade).
// Framing fields are the caller's: Content-Length is removed too and re-added from the
// parsed length, so a value the parser did not accept can never leak through.
// keep_upgrade: the Upgrade field stays (a 101 being relayed to the client that asked for it).
void remove_hop_by_hop(HeaderList& headers, bool keep_upgrade = false);

// The client as Arbiter believes it: the peer address, unless the peer is a trusted proxy,
// in which case the right-most X-Forwarded-For entry that is not itself trusted.
std::string believed_client_address(std::string_view peer_address, const HeaderList& request_headers,
                                    const std::vector<Cidr>& trusted_proxies);

struct UpstreamRequest {
  std::string_view method;
  std::string_view target;
  const HeaderList& headers;        // as received from the client
  std::string_view peer_address;    // the TCP peer
  bool peer_is_trusted_proxy = false;
  std::string_view request_id;
  std::string_view upstream_authority;  // "host:port", used as Host when the client sent none
  BodyFraming framing = BodyFraming::None;
  std::uint64_t content_length = 0;
  // Client fields a policy has dealt with and the backend must not see (e.g. If-Match).
  std::span<const std::string> omit_fields = {};
  // The client as believed_client_address() found it; empty: the peer address.
  std::string_view believed_client = {};
  // A protocol upgrade the route tunnels: the client's Upgrade field is forwarded with
  // `Connection: upgrade` instead of being removed as hop-by-hop.
  bool upgrade = false;
};

// Appends the head to send upstream (always HTTP/1.1, keep-alive) to `out`.
// X-Forwarded-For: appended to when the peer is a trusted proxy, otherwise replaced by the
// peer address, so a client cannot forge its origin to the backend. X-Forwarded-Proto and
// X-Forwarded-Host likewise are believed only from trusted proxies. Forwarded (RFC 7239): a
// trusted proxy's elements are kept and one is appended for this hop
// (`for=PEER;proto=http;host=HOST`); from anyone else the field is replaced by that element
// alone. X-Real-IP is always the believed client. Via gets "1.1 arbiter". TE is sent as
// `TE: trailers` when the client's TE lists trailers, and dropped otherwise; one Connection field
// names what this hop sends of TE and Upgrade.
void write_upstream_request_head(std::string& out, const UpstreamRequest& request);

// Appends to `out` one element of a Forwarded field (RFC 7239 section 4) for a hop that received
// a request from `for_address` over plain HTTP with Host `host` (none when `has_host` is false):
// IPv6 addresses are bracketed and quoted (`for="[::1]"`), a host that is not a token is quoted.
void append_forwarded_element(std::string& out, std::string_view for_address, bool has_host, std::string_view host);

// Whether a TE field value lists "trailers" (RFC 9110 section 10.1.4): the client accepts
// trailer fields.
bool accepts_trailers(const HeaderList& request_headers);

// Appends the end of a chunked body (RFC 9112 section 7.1.2) to `out`: the last chunk, the
// trailer fields that may cross a proxy, the final CRLF. Dropped from `trailers`: hop-by-hop and
// framing fields, Host, the forwarding fields Arbiter sets itself (a backend that merges trailers
// into the head must not believe a forged X-Forwarded-For), and `omit_fields`.
void write_last_chunk(std::string& out, const HeaderList& trailers, std::span<const std::string> omit_fields = {});

struct ClientResponse {
  int status = 200;
  const HeaderList& headers;  // hop-by-hop fields already removed
  BodyFraming framing = BodyFraming::None;
  std::uint64_t content_length = 0;
  bool keep_alive = true;
  bool client_is_http10 = false;
  std::string_view request_id;
  // A 101 relayed for a tunnel: `Connection: upgrade` (headers keep the Upgrade field).
  bool upgrade = false;
};

// Appends the head to send to the client to `out`.
void write_client_response_head(std::string& out, const ClientResponse& response);

// True for a status whose response never has a body (1xx, 204, 304).
bool status_has_no_body(int status) noexcept;

// True for the idempotent methods of RFC 9110 section 9.2.2 (GET, HEAD, PUT, DELETE, OPTIONS,
// TRACE): a request with one of them may be sent again after a connection failed under it.
bool is_idempotent_method(std::string_view method) noexcept;

// GET and HEAD: what the policies treat as reading a resource.
inline bool is_read_method(std::string_view method) noexcept { return method == "GET" || method == "HEAD"; }
// PUT, PATCH, DELETE and POST: what the policies treat as writing a resource.
inline bool is_write_method(std::string_view method) noexcept {
  return method == "PUT" || method == "PATCH" || method == "DELETE" || method == "POST";
}

}  // namespace arbiter
