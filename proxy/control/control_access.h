#pragma once
// Who may use the endpoints under [server] control_prefix ([control] allow and tokens, issue #16).
// Decided before a control handler runs (Exchange::answer_locally); the admin listener is not
// concerned (an operator-only listener).
//
//   - [control] tokens configured: the request needs `Authorization: Bearer <token>` whose
//     SHA-256 is a configured token's (401 otherwise), and that token needs the scope the
//     endpoint names (403 otherwise). The index and the registry's own 404/405 need a valid token
//     of any scope. `allow` is not consulted.
//   - no tokens: the client's address (the peer, or X-Forwarded-For from a trusted proxy) must be
//     within [control] allow (default loopback) (403 otherwise).
//
// Tokens are known by their hash only; a presented token is hashed and compared with every
// configured hash in constant time (no early exit), and is never kept, logged or echoed.
//
// Everything here is pure and thread-safe (no state; libcrypto's SHA-256 and RAND_bytes).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/config/config.h"
#include "proxy/http/headers.h"
#include "proxy/http/problem.h"

namespace arbiter {

class HandlerRegistry;

// SHA-256 of `data` as 64 lower-case hex digits.
std::string sha256_hex(std::string_view data);

// Equal contents, compared in a time that depends on the sizes only (CRYPTO_memcmp); false when
// the sizes differ.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

// The configured token whose hash is the SHA-256 of `presented`, or nullptr. Every configured
// hash is compared, whether or not one matched before.
const ControlToken* find_control_token(const std::vector<ControlToken>& tokens, std::string_view presented);

// What a request presents in its Authorization field.
struct PresentedCredential {
  bool present = false;     // the request has an Authorization field
  std::string_view bearer;  // the token of "Bearer <token>" (scheme in any case); empty: none
};
PresentedCredential presented_credential(const HeaderList& headers);

// The decision for one request: a refusal to answer instead of the handler, or who is asking.
struct ControlAccess {
  std::optional<Problem> refusal;  // 401 or 403 problem+json
  HeaderList fields;               // with a refusal: WWW-Authenticate when tokens are configured
  std::string principal;           // granted: the token's name, or the client's address
  bool granted() const noexcept { return !refusal.has_value(); }
};

// `scope`: the one the endpoint needs ("" for none beyond reaching the prefix); `client`: the
// client's address as Arbiter believes it.
ControlAccess check_control_access(const ControlConfig& control, std::string_view scope, const HeaderList& headers,
                                   std::string_view client);

// The same for a request to `registry` (the control registry): the scope of the entry that takes
// `method` and `path` (relative to the mount), the client from `peer` and [server]
// trusted_proxies.
ControlAccess check_control_access(const Config& config, const HandlerRegistry& registry, std::string_view method,
                                   std::string_view path, const HeaderList& headers, std::string_view peer);

// The field a control handler's caller names its credentials for the backend in, when its
// Authorization field is taken by a [control] token.
inline constexpr std::string_view kUpstreamAuthorization = "Arbiter-Upstream-Authorization";

// The fields of a request a control handler hands on to a route (LocalResponder::pass_on: a
// restore, a resolve), before it goes upstream. Without [control] tokens the caller's
// Authorization goes on as it is. With them, that field holds Arbiter's token, which never
// leaves Arbiter: it is removed, and Arbiter-Upstream-Authorization, when sent, becomes the
// Authorization the backend gets.
void hand_on_credentials(const ControlConfig& control, HeaderList& fields);

// One line for `arbiter --check`: "control access: ..." (the mode, never a hash).
std::string control_access_summary(const ControlConfig& control);

// `arbiter hash-token`: the [control] tokens line for a token, `sha256 = "<64 hex>"`.
std::string token_hash_line(std::string_view token);
// `arbiter hash-token --new`: "arb_" and 64 hex digits of 32 random bytes (RAND_bytes). Throws
// std::runtime_error when the system has no randomness to give.
std::string new_control_token();

}  // namespace arbiter
