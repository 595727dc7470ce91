// Who may use the control endpoints (proxy/control/control_access.h): SHA-256 against the
// standard's vectors, the constant-time compare, bearer parsing, the token and allow-list
// decisions with their problems and challenges, and the gate inside a real Exchange (over the
// fake host): refusals before the handler, LocalRequest::principal, the admin listener untouched.

#include "proxy/control/control_access.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "proxy/control/handler_registry.h"
#include "proxy/exchange/exchange.h"
#include "tests/support/fake_exchange_host.h"

namespace arbiter {
namespace {

// The token "abc" and the token "ops-secret", as [control] tokens name them.
constexpr std::string_view kAbcDigest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

ControlConfig with_tokens() {
  ControlConfig control;
  control.allow = {*parse_cidr("127.0.0.0/8")};
  control.tokens = {ControlToken{"reader", sha256_hex("reader-secret"), {"feed"}},
                    ControlToken{"ops", sha256_hex("ops-secret"), {"history", "locks"}},
                    ControlToken{"abc", std::string(kAbcDigest), {"resolve"}}};
  return control;
}

ControlConfig without_tokens(std::vector<std::string> networks) {
  ControlConfig control;
  for (const std::string& network : networks) control.allow.push_back(*parse_cidr(network));
  return control;
}

std::string challenge_of(const ControlAccess& access) {
  return std::string(access.fields.find("www-authenticate").value_or(""));
}

TEST(ControlAccessTest, Sha256MatchesTheStandardsVectors) {
  // FIPS 180-2, appendix B.
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), kAbcDigest);
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1'000'000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(sha256_hex(std::string_view("a\0b", 3)), sha256_hex(std::string("a\0b", 3)));
  EXPECT_NE(sha256_hex(std::string_view("a\0b", 3)), sha256_hex("a"));
}

TEST(ControlAccessTest, ConstantTimeEqualComparesEveryByteAndTheSizes) {
  std::string a(64, 'x');
  EXPECT_TRUE(constant_time_equal(a, std::string(64, 'x')));
  EXPECT_TRUE(constant_time_equal("", ""));
  std::string first = a, last = a;
  first.front() = 'y';
  last.back() = 'y';
  EXPECT_FALSE(constant_time_equal(a, first));
  EXPECT_FALSE(constant_time_equal(a, last));
  EXPECT_FALSE(constant_time_equal(a, a.substr(0, 63)));  // a prefix is not equal
  EXPECT_FALSE(constant_time_equal("", "x"));
}

TEST(ControlAccessTest, FindControlTokenMatchesByHashWhereverTheTokenIs) {
  ControlConfig control = with_tokens();
  EXPECT_EQ(find_control_token(control.tokens, "reader-secret"), &control.tokens[0]);
  EXPECT_EQ(find_control_token(control.tokens, "ops-secret"), &control.tokens[1]);
  EXPECT_EQ(find_control_token(control.tokens, "abc"), &control.tokens[2]);  // the last one
  EXPECT_EQ(find_control_token(control.tokens, "ops-secre"), nullptr);
  EXPECT_EQ(find_control_token(control.tokens, std::string(kAbcDigest)), nullptr);  // the hash is not the token
  EXPECT_EQ(find_control_token(control.tokens, ""), nullptr);
  EXPECT_EQ(find_control_token({}, "abc"), nullptr);
}

TEST(ControlAccessTest, BearerCredentialsAreReadFromTheAuthorizationField) {
  auto bearer = [](std::string_view value) {
    HeaderList headers{{"Authorization", value}};
    return std::string(presented_credential(headers).bearer);
  };
  EXPECT_EQ(bearer("Bearer abc"), "abc");
  EXPECT_EQ(bearer("bearer   abc  "), "abc");
  EXPECT_EQ(bearer("BEARER\tabc"), "abc");
  EXPECT_EQ(bearer("Basic YWJj"), "");
  EXPECT_EQ(bearer("Bearer"), "");
  EXPECT_EQ(bearer("Bearerabc"), "");
  EXPECT_EQ(bearer("abc"), "");
  EXPECT_FALSE(presented_credential(HeaderList{}).present);
  EXPECT_TRUE(presented_credential(HeaderList{{"Authorization", "Basic YWJj"}}).present);
  PresentedCredential twice = presented_credential(HeaderList{{"Authorization", "Bearer abc"}, {"Authorization", "Bearer x"}});
  EXPECT_TRUE(twice.present);
  EXPECT_EQ(twice.bearer, "");  // which one would be meant?
}

TEST(ControlAccessTest, WithoutTokensOnlyAllowedAddressesGetIn) {
  ControlConfig control = without_tokens({"127.0.0.0/8", "::1/128"});
  ControlAccess in = check_control_access(control, kScopeHistory, HeaderList{}, "127.0.0.1");
  EXPECT_TRUE(in.granted());
  EXPECT_EQ(in.principal, "127.0.0.1");
  EXPECT_TRUE(check_control_access(control, "", HeaderList{}, "::1").granted());
  EXPECT_TRUE(check_control_access(control, "", HeaderList{}, "::ffff:127.0.0.1").granted());  // dual-stack
  ControlAccess out = check_control_access(control, kScopeLocks, HeaderList{{"Authorization", "Bearer abc"}}, "10.1.2.3");
  ASSERT_FALSE(out.granted());
  EXPECT_EQ(out.refusal->status, 403);
  EXPECT_EQ(out.refusal->type, "urn:arbiter:problem:address-not-allowed");
  EXPECT_NE(out.refusal->detail.find("10.1.2.3"), std::string::npos);
  EXPECT_EQ(challenge_of(out), "");  // no token would help
  EXPECT_FALSE(check_control_access(without_tokens({}), "", HeaderList{}, "127.0.0.1").granted());
}

TEST(ControlAccessTest, APublicEndpointNeedsNoTokenButStillAnAllowedAddressWithoutTokens) {
  ControlAccess page = check_control_access(with_tokens(), kScopePublic, HeaderList{}, "10.1.2.3");
  EXPECT_TRUE(page.granted());
  EXPECT_EQ(page.principal, "10.1.2.3");
  EXPECT_FALSE(check_control_access(with_tokens(), kScopeFeed, HeaderList{}, "10.1.2.3").granted());
  ControlConfig allowed = without_tokens({"127.0.0.0/8"});
  EXPECT_TRUE(check_control_access(allowed, kScopePublic, HeaderList{}, "127.0.0.1").granted());
  EXPECT_EQ(check_control_access(allowed, kScopePublic, HeaderList{}, "10.1.2.3").refusal->status, 403);
}

TEST(ControlAccessTest, WithTokensAMissingOrWrongTokenIs401WithAChallenge) {
  ControlConfig control = with_tokens();
  ControlAccess missing = check_control_access(control, kScopeHistory, HeaderList{}, "127.0.0.1");
  ASSERT_FALSE(missing.granted());
  EXPECT_EQ(missing.refusal->status, 401);
  EXPECT_EQ(missing.refusal->type, "urn:arbiter:problem:token-required");
  EXPECT_EQ(challenge_of(missing), "Bearer realm=\"arbiter\"");

  ControlAccess basic = check_control_access(control, kScopeHistory, HeaderList{{"Authorization", "Basic b3Bz"}}, "127.0.0.1");
  ASSERT_FALSE(basic.granted());
  EXPECT_EQ(basic.refusal->status, 401);
  EXPECT_EQ(challenge_of(basic), "Bearer realm=\"arbiter\", error=\"invalid_request\"");

  for (const std::string& wrong : {std::string("Bearer ops-secre"), "Bearer " + std::string(kAbcDigest)}) {
    ControlAccess refused = check_control_access(control, kScopeHistory, HeaderList{{"Authorization", wrong}}, "127.0.0.1");
    ASSERT_FALSE(refused.granted()) << wrong;
    EXPECT_EQ(refused.refusal->status, 401);
    EXPECT_EQ(refused.refusal->type, "urn:arbiter:problem:invalid-token");
    EXPECT_EQ(challenge_of(refused), "Bearer realm=\"arbiter\", error=\"invalid_token\"");
    EXPECT_EQ(refused.refusal->to_json("r").find("ops-secre"), std::string::npos);  // never echoed
  }
  // Also for the index and paths no entry takes: only holders of a token reach the prefix.
  EXPECT_EQ(check_control_access(control, "", HeaderList{}, "127.0.0.1").refusal->status, 401);
}

TEST(ControlAccessTest, TheRightTokenWithoutTheScopeIs403NamingIt) {
  ControlConfig control = with_tokens();
  ControlAccess refused =
      check_control_access(control, kScopeHistory, HeaderList{{"Authorization", "Bearer reader-secret"}}, "127.0.0.1");
  ASSERT_FALSE(refused.granted());
  EXPECT_EQ(refused.refusal->status, 403);
  EXPECT_EQ(refused.refusal->type, "urn:arbiter:problem:insufficient-scope");
  EXPECT_NE(refused.refusal->detail.find("'history'"), std::string::npos);
  EXPECT_NE(refused.refusal->to_json("r").find("\"scope\":\"history\""), std::string::npos);
  EXPECT_EQ(challenge_of(refused), "Bearer realm=\"arbiter\", error=\"insufficient_scope\", scope=\"history\"");
}

TEST(ControlAccessTest, TheRightTokenWithTheScopeGetsInAsItsNameFromAnyAddress) {
  ControlConfig control = with_tokens();  // allow is 127.0.0.0/8: not consulted with tokens
  HeaderList ops{{"Authorization", "Bearer ops-secret"}};
  for (std::string_view scope : {kScopeHistory, kScopeLocks, std::string_view()}) {
    ControlAccess in = check_control_access(control, scope, ops, "192.0.2.7");
    ASSERT_TRUE(in.granted()) << scope;
    EXPECT_EQ(in.principal, "ops");
  }
  EXPECT_FALSE(check_control_access(control, kScopeFeed, ops, "127.0.0.1").granted());
  EXPECT_TRUE(check_control_access(control, kScopeResolve, HeaderList{{"Authorization", "Bearer abc"}}, "::1").granted());
}

TEST(ControlAccessTest, TheRegistryNamesTheScopeAndATrustedProxyNamesTheClient) {
  HandlerRegistry registry("control");
  std::shared_ptr<LocalHandler> none;
  registry.add("/", PathMatch::Exact, {"GET"}, "index", none);
  registry.add("/locks", PathMatch::Exact, {"GET"}, "locks", none, std::string(kScopeLocks));
  Config config;
  config.control = with_tokens();
  config.control.tokens[1].scopes = {"history"};  // ops may not see locks
  HeaderList ops{{"Authorization", "Bearer ops-secret"}};
  EXPECT_EQ(check_control_access(config, registry, "GET", "/locks", ops, "127.0.0.1").refusal->status, 403);
  EXPECT_TRUE(check_control_access(config, registry, "GET", "/", ops, "127.0.0.1").granted());
  EXPECT_TRUE(check_control_access(config, registry, "GET", "/nothing-here", ops, "127.0.0.1").granted());  // its 404
  EXPECT_EQ(check_control_access(config, registry, "GET", "/nothing-here", HeaderList{}, "127.0.0.1").refusal->status,
            401);

  config.control = without_tokens({"203.0.113.0/24"});
  config.server.trusted_proxies = {*parse_cidr("127.0.0.1")};
  HeaderList forwarded{{"X-Forwarded-For", "203.0.113.9"}};
  ControlAccess via_proxy = check_control_access(config, registry, "GET", "/locks", forwarded, "127.0.0.1");
  ASSERT_TRUE(via_proxy.granted());
  EXPECT_EQ(via_proxy.principal, "203.0.113.9");
  // From a peer that is not trusted, X-Forwarded-For is not believed.
  EXPECT_FALSE(check_control_access(config, registry, "GET", "/locks", forwarded, "198.51.100.1").granted());
}

TEST(ControlAccessTest, HashTokenLinesAndNewTokens) {
  EXPECT_EQ(token_hash_line("abc"), "sha256 = \"" + std::string(kAbcDigest) + "\"");
  std::string one = new_control_token(), two = new_control_token();
  EXPECT_EQ(one.size(), 4u + 64u);
  EXPECT_TRUE(one.starts_with("arb_"));
  EXPECT_EQ(one.find_first_not_of("0123456789abcdef", 4), std::string::npos) << one;
  EXPECT_NE(one, two);
}

TEST(ControlAccessTest, TheSummarySaysTheModeAndNeverAHash) {
  ControlConfig control = with_tokens();
  std::string summary = control_access_summary(control);
  EXPECT_EQ(summary, "control access: bearer tokens (reader, ops, abc); [control] allow is not consulted");
  EXPECT_EQ(control_access_summary(without_tokens({"127.0.0.0/8", "::1/128"})),
            "control access: no tokens; clients within 127.0.0.0/8, ::1/128");
  EXPECT_EQ(control_access_summary(without_tokens({})), "control access: nobody (no tokens, [control] allow is empty)");
}

// ---- through an Exchange

// Remembers who asked.
class PrincipalHandler final : public LocalHandler {
 public:
  void handle(const LocalRequest& request, LocalResponder& responder) override {
    ++calls;
    principal = std::string(request.principal);
    responder.reply(200, HeaderList{{"Content-Type", "text/plain"}}, "ok");
  }
  int calls = 0;
  std::string principal;
};

class ControlAccessExchangeTest : public ::testing::Test {
 protected:
  void start(const std::string& control, std::string peer) {
    Config config = parse_config(control +
                                     "\n[upstream.backend]\nservers = [\"127.0.0.1:9\"]\n"
                                     "[[route]]\nname = \"all\"\npath = \"/*\"\nupstream = \"backend\"\n",
                                 "control_access_test.toml");
    host = std::make_unique<testing::FakeExchangeHost>(std::make_shared<Runtime>(std::move(config), state), std::move(peer));
    registry.add("/locks", PathMatch::Exact, {"GET"}, "locks", handler, std::string(kScopeLocks));
    host->control_registry = &registry;
  }
  RuntimeState state;
  HandlerRegistry registry{"control"};
  std::shared_ptr<PrincipalHandler> handler = std::make_shared<PrincipalHandler>();
  std::unique_ptr<testing::FakeExchangeHost> host;
};

TEST_F(ControlAccessExchangeTest, AnAllowedAddressIsThePrincipal) {
  start("", "127.0.0.1");
  host->feed("GET /_arbiter/locks HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(handler->calls, 1);
  EXPECT_EQ(handler->principal, "127.0.0.1");
  EXPECT_EQ(host->statuses, std::vector<int>{200});
}

TEST_F(ControlAccessExchangeTest, AnAddressOutsideAllowIsRefusedBeforeTheHandlerAndTheAdminListenerIsNotConcerned) {
  start("", "10.9.8.7");
  host->feed("GET /_arbiter/locks HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(handler->calls, 0);
  EXPECT_TRUE(host->to_client.starts_with("HTTP/1.1 403 ")) << host->to_client;
  EXPECT_NE(host->to_client.find("address-not-allowed"), std::string::npos) << host->to_client;

  HandlerRegistry admin{"admin"};
  admin.add("/locks", PathMatch::Exact, {"GET"}, "locks", handler);
  host->admin_registry = &admin;
  host->feed("GET /locks HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(handler->calls, 1);
  EXPECT_EQ(host->statuses, (std::vector<int>{403, 200}));
}

TEST_F(ControlAccessExchangeTest, ATokensNameIsThePrincipalAndAMissingTokenIsChallenged) {
  start("[control]\ntokens = [{ name = \"ops\", sha256 = \"" + std::string(kAbcDigest) + "\", scopes = [\"locks\"] }]",
        "10.9.8.7");
  host->feed("GET /_arbiter/locks HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(handler->calls, 0);
  EXPECT_TRUE(host->to_client.starts_with("HTTP/1.1 401 ")) << host->to_client;
  EXPECT_NE(host->to_client.find("WWW-Authenticate: Bearer realm=\"arbiter\"\r\n"), std::string::npos) << host->to_client;
  host->feed("GET /_arbiter/locks HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer abc\r\n\r\n");
  EXPECT_EQ(handler->calls, 1);
  EXPECT_EQ(handler->principal, "ops");
  EXPECT_EQ(host->statuses, (std::vector<int>{401, 200}));
}

}  // namespace
}  // namespace arbiter
