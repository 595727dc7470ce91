// [control]: every key of ControlConfig read from the file, the defaults, and each mistake
// reported with its position; parse_http_url (webhook urls); /config showing tokens by name and
// webhooks by url, never a hash or a secret.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "proxy/config/config.h"
#include "proxy/control/config_json.h"
#include "tests/proxy/config/config_test_support.h"

namespace arbiter {
namespace {

constexpr std::string_view kAbcSha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

// [control] and its `lines` from line 2, then an upstream and a route.
std::string control_config(const std::string& lines) {
  return "[control]\n" + lines + "\n[upstream.legacy]\nservers = [\"127.0.0.1:8081\"]\n"
         "[[route]]\nname = \"a\"\npath = \"/a\"\nupstream = \"legacy\"\n";
}

std::vector<std::string> control_errors(const std::string& lines) {
  return testing::config_errors(control_config(lines));
}

TEST(ControlConfigTest, DefaultsAllowLoopbackOnlyWithoutTokens) {
  Config config = parse_config("[upstream.legacy]\nservers = [\"127.0.0.1:8081\"]\n"
                               "[[route]]\nname = \"a\"\npath = \"/a\"\nupstream = \"legacy\"\n",
                               "f");
  const ControlConfig& control = config.control;
  ASSERT_EQ(control.allow.size(), 2u);
  EXPECT_EQ(control.allow[0].text, "127.0.0.0/8");
  EXPECT_EQ(control.allow[1].text, "::1/128");
  EXPECT_TRUE(control.allow[0].contains("127.3.2.1"));
  EXPECT_TRUE(control.allow[1].contains("::1"));
  EXPECT_FALSE(control.allow[0].contains("10.0.0.1"));
  EXPECT_TRUE(control.tokens.empty());
  EXPECT_EQ(control.feed, FeedLimits{});
  EXPECT_EQ(control.heartbeat, std::chrono::seconds(15));
  EXPECT_TRUE(control.webhooks.empty());
}

TEST(ControlConfigTest, EveryKeyIsRead) {
  Config config = parse_config(control_config(
                                   "allow = [\"10.0.0.0/8\"]\n"
                                   "tokens = [{ name = \"ops\", sha256 = \"" + std::string(kAbcSha256) +
                                   "\", scopes = [\"feed\", \"locks\", \"feed\"] },\n"
                                   "          { name = \"ci.bot-2\", sha256 = \"" + std::string(64, 'A') +
                                   "\", scopes = [\"history\"] }]\n"
                                   "feed_buffer = 500\nkeep_body_bytes = \"1KiB\"\nkeep_bodies_total = \"2MiB\"\nheartbeat = \"5s\"\nretry = \"750ms\"\n"
                                   "max_subscribers = 7\nmax_subscriber_buffer = \"64KiB\"\n"
                                   "[[control.webhook]]\nurl = \"http://127.0.0.1:9000/hooks?x=1\"\n"
                                   "events = [\"conflict\", \"resolved\"]\nsecret = \"s3cret\"\nmax_retry = \"1m\"\n"
                                   "queue = 20\ntimeout = \"2s\"\n"
                                   "[[control.webhook]]\nurl = \"http://localhost:9001\"\n"),
                               "f");
  const ControlConfig& control = config.control;
  ASSERT_EQ(control.allow.size(), 1u);
  EXPECT_EQ(control.allow[0].text, "10.0.0.0/8");
  ASSERT_EQ(control.tokens.size(), 2u);
  EXPECT_EQ(control.tokens[0].name, "ops");
  EXPECT_EQ(control.tokens[0].sha256, kAbcSha256);
  EXPECT_EQ(control.tokens[0].scopes, (std::vector<std::string>{"feed", "locks"}));  // each once
  EXPECT_EQ(control.tokens[1].name, "ci.bot-2");
  EXPECT_EQ(control.tokens[1].sha256, std::string(64, 'a'));  // upper-case hex is kept lower-cased
  EXPECT_EQ(control.feed.capacity, 500u);
  EXPECT_EQ(control.feed.keep_body_bytes, 1024u);
  EXPECT_EQ(control.feed.max_body_bytes, 2u << 20);
  EXPECT_EQ(control.heartbeat, std::chrono::seconds(5));
  EXPECT_EQ(control.retry, std::chrono::milliseconds(750));
  EXPECT_EQ(control.max_subscribers, 7u);
  EXPECT_EQ(control.max_subscriber_buffer, 64u * 1024);
  ASSERT_EQ(control.webhooks.size(), 2u);
  EXPECT_EQ(control.webhooks[0].url, "http://127.0.0.1:9000/hooks?x=1");
  EXPECT_EQ(control.webhooks[0].events, (std::vector<std::string>{"conflict", "resolved"}));
  EXPECT_EQ(control.webhooks[0].secret, "s3cret");
  EXPECT_EQ(control.webhooks[0].max_retry, std::chrono::minutes(1));
  EXPECT_EQ(control.webhooks[0].queue, 20u);
  EXPECT_EQ(control.webhooks[0].timeout, std::chrono::seconds(2));
  EXPECT_EQ(control.webhooks[1].url, "http://localhost:9001");
  EXPECT_TRUE(control.webhooks[1].events.empty());  // every type
  EXPECT_EQ(control.webhooks[1].max_retry, std::chrono::minutes(10));
}

TEST(ControlConfigTest, TokensMayBeWrittenAsAnArrayOfTables) {
  Config config = parse_config(control_config("[[control.tokens]]\nname = \"ops\"\nsha256 = \"" +
                                              std::string(kAbcSha256) + "\"\nscopes = [\"resolve\"]\n"),
                               "f");
  ASSERT_EQ(config.control.tokens.size(), 1u);
  EXPECT_EQ(config.control.tokens[0].scopes, std::vector<std::string>{"resolve"});
}

TEST(ControlConfigTest, AnEmptyAllowListLetsNobodyInWithoutATokenAndIsAccepted) {
  EXPECT_TRUE(parse_config(control_config("allow = []"), "f").control.allow.empty());
}

TEST(ControlConfigTest, MistakesArePositioned) {
  std::string hash = "\"" + std::string(kAbcSha256) + "\"";
  EXPECT_EQ(control_errors("alow = []"),
            std::vector<std::string>{"arbiter.toml:2:1: control.alow: unknown key; did you mean 'allow'?"});
  EXPECT_EQ(control_errors("allow = [\"10.0.0.1/8\"]"),
            std::vector<std::string>{"arbiter.toml:2:10: control.allow[0]: invalid CIDR \"10.0.0.1/8\"; write an "
                                     "address or ADDRESS/PREFIX with no bits set after the prefix, e.g. "
                                     "\"10.0.0.0/8\", \"::1/128\""});
  EXPECT_EQ(control_errors("tokens = [{ name = \"ops\", sha256 = " + hash + ", scopes = [\"lock\"] }]"),
            std::vector<std::string>{"arbiter.toml:2:114: control.tokens[0].scopes[0]: unknown scope 'lock'; did "
                                     "you mean 'locks'? (scopes: feed, resolve, history, locks)"});
  EXPECT_EQ(control_errors("tokens = [{ name = \"ops\", sha256 = \"abc\", scopes = [\"feed\"] }]"),
            std::vector<std::string>{"arbiter.toml:2:36: control.tokens[0].sha256: expected the 64 hex digits of "
                                     "the token's SHA-256 (`arbiter hash-token` prints the line), got 3 characters"});
  std::vector<std::string> not_hex =
      control_errors("tokens = [{ name = \"ops\", sha256 = \"" + std::string(63, 'a') + "g\", scopes = [\"feed\"] }]");
  ASSERT_EQ(not_hex.size(), 1u);
  EXPECT_NE(not_hex[0].find("got 64 characters that are not all hex digits"), std::string::npos) << not_hex[0];
  EXPECT_EQ(not_hex[0].find("aaag"), std::string::npos) << not_hex[0];  // never echoed: it may be a token
  EXPECT_EQ(control_errors("tokens = [{ name = \"o p\", sha256 = " + hash + ", scopes = [\"feed\"] }]"),
            std::vector<std::string>{"arbiter.toml:2:20: control.tokens[0].name: \"o p\" is not a token name: 1 to "
                                     "64 letters, digits, '.', '_' or '-'"});
  EXPECT_EQ(control_errors("tokens = [{ name = \"ops\", sha256 = " + hash + ", scopes = [\"feed\"], scope = 1 }]"),
            std::vector<std::string>{"arbiter.toml:2:123: control.tokens[0].scope: unknown key; did you mean "
                                     "'scopes'?"});
  EXPECT_EQ(control_errors("tokens = [{ name = \"ops\", sha256 = " + hash + " }]"),
            std::vector<std::string>{"arbiter.toml:2:11: control.tokens[0].scopes: missing required key 'scopes'"});
  EXPECT_EQ(control_errors("tokens = [{ name = \"ops\", sha256 = " + hash + ", scopes = [] }]"),
            std::vector<std::string>{"arbiter.toml:2:113: control.tokens[0].scopes: no scopes; give at least one of "
                                     "feed, resolve, history, locks"});
  EXPECT_EQ(control_errors("tokens = { name = \"ops\" }"),
            std::vector<std::string>{"arbiter.toml:2:10: control.tokens: expected an array of tables, got a table; "
                                     "write tokens = [{ name = \"ops\", sha256 = \"...\", scopes = [\"feed\"] }]"});
  EXPECT_EQ(control_errors("feed_buffer = 0"),
            std::vector<std::string>{"arbiter.toml:2:15: control.feed_buffer: out of range: must be between 1 and "
                                     "10000000, got 0"});
  EXPECT_EQ(control_errors("heartbeat = \"0s\"").size(), 1u);
  EXPECT_EQ(control_errors("max_subscriber_buffer = \"lots\"").size(), 1u);
  EXPECT_EQ(control_errors("max_subscribers = 0").size(), 1u);
  // One body cannot be kept if all of them together may not be that large.
  std::vector<std::string> over = control_errors("keep_bodies_total = \"1KiB\"\nkeep_body_bytes = \"2KiB\"");
  ASSERT_EQ(over.size(), 1u);
  EXPECT_EQ(over[0].rfind("arbiter.toml:3:19: control.keep_body_bytes: ", 0), 0u) << over[0];
  EXPECT_NE(over[0].find("1024"), std::string::npos) << over[0];
}

TEST(ControlConfigTest, KeptBodiesDefaultTo64MiBTogetherAnd64KiBEach) {
  Config config = parse_config(control_config("feed_buffer = 10"), "f");
  EXPECT_EQ(config.control.feed.max_body_bytes, 64u << 20);
  EXPECT_EQ(config.control.feed.keep_body_bytes, 64u << 10);
  EXPECT_EQ(parse_config(control_config("keep_bodies_total = 0\nkeep_body_bytes = 0"), "f").control.feed.max_body_bytes, 0u);
}

TEST(ControlConfigTest, DuplicateTokenNamesAndHashesNameTheEarlierOne) {
  std::string hash = "\"" + std::string(kAbcSha256) + "\"";
  EXPECT_EQ(control_errors("tokens = [{ name = \"ops\", sha256 = " + hash + ", scopes = [\"feed\"] },\n"
                           "  { name = \"ops\", sha256 = \"" + std::string(64, '0') + "\", scopes = [\"feed\"] },\n"
                           "  { name = \"ci\", sha256 = " + hash + ", scopes = [\"feed\"] }]"),
            (std::vector<std::string>{"arbiter.toml:3:12: control.tokens[1].name: duplicate token name 'ops'",
                                      "arbiter.toml:4:27: control.tokens[2].sha256: the same token as 'ops'"}));
}

TEST(ControlConfigTest, WebhookMistakesArePositioned) {
  EXPECT_EQ(control_errors("[[control.webhook]]\nurl = \"https://127.0.0.1:9000/\""),
            std::vector<std::string>{"arbiter.toml:3:7: control.webhook[0].url: invalid webhook url "
                                     "\"https://127.0.0.1:9000/\"; write http://HOST:PORT/PATH with a numeric address "
                                     "or localhost, e.g. \"http://127.0.0.1:9000/hooks\" (no https)"});
  EXPECT_EQ(control_errors("[[control.webhook]]\nurl = \"http://127.0.0.1/hooks\"").size(), 1u);  // no port
  EXPECT_EQ(control_errors("[[control.webhook]]\nevents = [\"conflict\"]"),
            std::vector<std::string>{"arbiter.toml:2:1: control.webhook[0].url: missing required key 'url'"});
  EXPECT_EQ(control_errors("[[control.webhook]]\nurl = \"http://127.0.0.1:9/\"\nevents = [\"merge\"]"),
            std::vector<std::string>{"arbiter.toml:4:11: control.webhook[0].events[0]: unknown event type 'merge'; "
                                     "did you mean 'merged'? (event types: conflict, merged, locked, lock-expired, "
                                     "lock-broken, resolved)"});
  EXPECT_EQ(control_errors("[[control.webhook]]\nurl = \"http://127.0.0.1:9/\"\nqueue = 0").size(), 1u);
  EXPECT_EQ(control_errors("[[control.webhook]]\nurl = \"http://127.0.0.1:9/\"\nsecrets = \"x\""),
            std::vector<std::string>{"arbiter.toml:4:1: control.webhook[0].secrets: unknown key; did you mean "
                                     "'secret'?"});
}

TEST(ControlConfigTest, HttpUrlsNeedAPortAndTakeNoFragment) {
  auto url = parse_http_url("http://127.0.0.1:9000/hooks?a=1");
  ASSERT_TRUE(url);
  EXPECT_EQ(url->address.text(), "127.0.0.1:9000");
  EXPECT_EQ(url->target, "/hooks?a=1");
  url = parse_http_url("HTTP://[::1]:80");
  ASSERT_TRUE(url);
  EXPECT_EQ(url->address.text(), "[::1]:80");
  EXPECT_EQ(url->target, "/");
  for (std::string_view bad : {"https://127.0.0.1:1/", "http://127.0.0.1/", "http://127.0.0.1:0/", "http://example.com:80/",
                               "http://u@127.0.0.1:1/", "http://127.0.0.1:1/a b", "http://127.0.0.1:1/#x", "http://",
                               "127.0.0.1:1", ""}) {
    EXPECT_FALSE(parse_http_url(bad)) << bad;
  }
}

TEST(ControlConfigTest, ConfigJsonShowsTokensByNameAndWebhooksByUrlOnly) {
  Config config = parse_config(control_config("tokens = [{ name = \"ops\", sha256 = \"" + std::string(kAbcSha256) +
                                              "\", scopes = [\"feed\"] }]\n"
                                              "[[control.webhook]]\nurl = \"http://127.0.0.1:9000/h\"\n"
                                              "events = [\"conflict\"]\nsecret = \"hush-hush\"\n"),
                               "f");
  std::string text = config_to_json(config);
  EXPECT_EQ(text.find(kAbcSha256), std::string::npos) << text;
  EXPECT_EQ(text.find("hush-hush"), std::string::npos) << text;
  nlohmann::json control = nlohmann::json::parse(text)["control"];
  EXPECT_EQ(control["tokens"], nlohmann::json::parse(R"([{"name": "ops", "scopes": ["feed"]}])"));
  EXPECT_EQ(control["webhook"][0]["url"], "http://127.0.0.1:9000/h");
  EXPECT_EQ(control["webhook"][0]["events"], nlohmann::json::array({"conflict"}));
  EXPECT_EQ(control["webhook"][0]["signed"], true);
  EXPECT_EQ(control["allow"], nlohmann::json::array({"127.0.0.0/8", "::1/128"}));
  EXPECT_EQ(control["feed_buffer"], 10000);
}

}  // namespace
}  // namespace arbiter
