#include "proxy/control/control_access.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <stdexcept>

#include "proxy/control/handler_registry.h"
#include "proxy/http/forwarding.h"
#include "proxy/http/hex.h"

namespace arbiter {

namespace {

bool is_space(char c) noexcept { return c == ' ' || c == '\t'; }

// WWW-Authenticate of RFC 6750 section 3: error and scope only when they apply.
HeaderList bearer_challenge(std::string_view error, std::string_view scope = {}) {
  std::string value = "Bearer realm=\"arbiter\"";
  if (!error.empty()) value += ", error=\"" + std::string(error) + "\"";
  if (!scope.empty()) value += ", scope=\"" + std::string(scope) + "\"";
  return HeaderList{{"WWW-Authenticate", value}};
}

ControlAccess refused(Problem problem, HeaderList fields = {}) {
  ControlAccess access;
  access.refusal = std::move(problem);
  access.fields = std::move(fields);
  return access;
}

ControlAccess check_token(const std::vector<ControlToken>& tokens, std::string_view scope, const HeaderList& headers) {
  PresentedCredential credential = presented_credential(headers);
  if (credential.bearer.empty()) {
    std::string detail = credential.present
                             ? "The Authorization field holds no bearer token; send Authorization: Bearer <token>."
                             : "The control endpoints need Authorization: Bearer <token> (a [control] token).";
    return refused(Problem::make("token-required", 401, "Token required", std::move(detail)),
                   bearer_challenge(credential.present ? "invalid_request" : ""));
  }
  const ControlToken* token = find_control_token(tokens, credential.bearer);
  if (token == nullptr) {
    return refused(Problem::make("invalid-token", 401, "Invalid token", "The bearer token is not a [control] token."),
                   bearer_challenge("invalid_token"));
  }
  if (!scope.empty() && std::find(token->scopes.begin(), token->scopes.end(), scope) == token->scopes.end()) {
    Problem problem = Problem::make("insufficient-scope", 403, "Insufficient scope",
                                    "The token " + single_quoted(token->name) + " lacks the scope " +
                                        single_quoted(scope) + " this endpoint needs.");
    problem.extensions.emplace_back("scope", std::string(scope));
    return refused(std::move(problem), bearer_challenge("insufficient_scope", scope));
  }
  ControlAccess access;
  access.principal = token->name;
  return access;
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return lower_hex(digest, sizeof digest);
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

const ControlToken* find_control_token(const std::vector<ControlToken>& tokens, std::string_view presented) {
  std::string hash = sha256_hex(presented);
  const ControlToken* match = nullptr;
  for (const ControlToken& token : tokens) {
    bool equal = constant_time_equal(hash, token.sha256);
    match = equal ? &token : match;  // no early exit: the time does not say which one matched
  }
  return match;
}

PresentedCredential presented_credential(const HeaderList& headers) {
  PresentedCredential credential;
  std::optional<std::string_view> field = headers.find("authorization");
  if (!field) return credential;
  credential.present = true;
  if (headers.count("authorization") > 1) return credential;  // which one would be meant?
  std::string_view value = *field;
  while (!value.empty() && is_space(value.front())) value.remove_prefix(1);
  while (!value.empty() && is_space(value.back())) value.remove_suffix(1);
  constexpr std::string_view kScheme = "Bearer";
  if (value.size() <= kScheme.size() || !iequals(value.substr(0, kScheme.size()), kScheme) ||
      !is_space(value[kScheme.size()])) {
    return credential;
  }
  value.remove_prefix(kScheme.size());
  while (!value.empty() && is_space(value.front())) value.remove_prefix(1);
  credential.bearer = value;
  return credential;
}

ControlAccess check_control_access(const ControlConfig& control, std::string_view scope, const HeaderList& headers,
                                   std::string_view client) {
  if (!control.tokens.empty() && scope != kScopePublic) return check_token(control.tokens, scope, headers);
  if (!control.tokens.empty()) {
    ControlAccess access;
    access.principal = client;
    return access;
  }
  for (const Cidr& cidr : control.allow) {
    if (cidr.contains(client)) {
      ControlAccess access;
      access.principal = client;
      return access;
    }
  }
  return refused(Problem::make("address-not-allowed", 403, "Address not allowed",
                               "The control endpoints answer the addresses of [control] allow only; " +
                                   std::string(client) + " is not among them."));
}

ControlAccess check_control_access(const Config& config, const HandlerRegistry& registry, std::string_view method,
                                   std::string_view path, const HeaderList& headers, std::string_view peer) {
  HandlerRegistry::Lookup lookup = registry.find(method, path);
  std::string_view scope = lookup.entry != nullptr ? std::string_view(lookup.entry->scope) : std::string_view();
  const std::vector<Cidr>& trusted = config.server.trusted_proxies;
  bool from_trusted_proxy = std::any_of(trusted.begin(), trusted.end(), [&](const Cidr& c) { return c.contains(peer); });
  std::string client = from_trusted_proxy ? believed_client_address(peer, headers, trusted) : std::string(peer);
  return check_control_access(config.control, scope, headers, client);
}

std::string control_access_summary(const ControlConfig& control) {
  if (!control.tokens.empty()) {
    std::string names;
    for (const ControlToken& token : control.tokens) names += (names.empty() ? "" : ", ") + token.name;
    return "control access: bearer tokens (" + names + "); [control] allow is not consulted";
  }
  std::string networks;
  for (const Cidr& cidr : control.allow) networks += (networks.empty() ? "" : ", ") + cidr.text;
  if (networks.empty()) return "control access: nobody (no tokens, [control] allow is empty)";
  return "control access: no tokens; clients within " + networks;
}

std::string token_hash_line(std::string_view token) { return "sha256 = \"" + sha256_hex(token) + "\""; }

std::string new_control_token() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("no random bytes to make a token of (RAND_bytes)");
  return "arb_" + lower_hex(bytes, sizeof bytes);
}

void hand_on_credentials(const ControlConfig& control, HeaderList& fields) {
  std::optional<std::string> upstream;
  if (auto value = fields.find(kUpstreamAuthorization)) upstream = std::string(*value);
  fields.remove(kUpstreamAuthorization);
  if (control.tokens.empty()) return;
  fields.remove("Authorization");
  if (upstream) fields.set("Authorization", *upstream);
}

}  // namespace arbiter
