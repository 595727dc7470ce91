// [route.etag] on_conflict / merge_keys / patch and [route.history], read through parse_config:
// defaults, every key, positioned errors, what history needs, /config JSON and the route table.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policies/etag/etag_config.h"
#include "proxy/config/config.h"
#include "proxy/control/config_json.h"
#include "tests/proxy/config/config_test_support.h"

namespace arbiter {
namespace {

// Routes start on line 4; [route.etag] is on line 8 and `etag_keys` from line 9.
std::string history_config_with(const std::string& etag_keys, const std::string& after = "") {
  return "[upstream.legacy]\nservers = [\"127.0.0.1:8081\"]\n\n[[route]]\nname = \"orders\"\npath = "
         "\"/orders/{id}\"\nupstream = \"legacy\"\n[route.etag]\n" + etag_keys + "\n" + after;
}

const EtagPolicyConfig* history_etag_of(const RouteConfig& route) { return settings_of<EtagPolicyConfig>(route.policies); }

std::vector<std::string> history_errors(const std::string& toml) {
  std::vector<std::string> texts = testing::config_errors(toml);
  if (texts.empty()) ADD_FAILURE() << "parse_config accepted:\n" << toml;
  return texts;
}

TEST(HistoryConfigTest, DefaultsAreTodaysBehaviourWithoutHistory) {
  Config config = parse_config(history_config_with(""), "arbiter.toml");
  const EtagPolicyConfig* etag = history_etag_of(config.routes.at(0));
  ASSERT_NE(etag, nullptr);
  EXPECT_EQ(etag->on_conflict, EtagPolicyConfig::OnConflict::Reject);
  EXPECT_EQ(etag->patch, EtagPolicyConfig::Patch::Forward);
  EXPECT_TRUE(etag->merge_keys.empty());
  EXPECT_FALSE(etag->history.has_value());
}

TEST(HistoryConfigTest, EveryKeyIsRead) {
  Config config = parse_config(history_config_with("on_conflict = \"merge\"\npatch = \"apply\"\n"
                                                   "merge_keys = { \"/lines\" = \"id\", \"/a~1b\" = \"sku\" }",
                                                   "[route.history]\nkeep = 5\nmax_bytes = \"2MiB\"\n"
                                                   "max_version_bytes = \"10KiB\"\nmax_resources = 7\n"
                                                   "client_key = \"header:X-User\"\n"
                                                   "[route.lock]\nfence_header = \"X-Fence\"\n"),
                               "arbiter.toml");
  const EtagPolicyConfig* etag = history_etag_of(config.routes.at(0));
  ASSERT_NE(etag, nullptr);
  EXPECT_EQ(etag->on_conflict, EtagPolicyConfig::OnConflict::Merge);
  EXPECT_EQ(etag->patch, EtagPolicyConfig::Patch::Apply);
  EXPECT_EQ(etag->merge_keys, (std::map<std::string, std::string, std::less<>>{{"/lines", "id"}, {"/a~1b", "sku"}}));
  ASSERT_TRUE(etag->history.has_value());
  EXPECT_EQ(etag->history->limits, (HistoryLimits{5, 2u << 20, 10u << 10, 7}));
  EXPECT_EQ(etag->history->client_key, KeyKind::Header);
  EXPECT_EQ(etag->history->client_header, "X-User");
  EXPECT_EQ(etag->control_prefix, "/_arbiter");
  EXPECT_EQ(etag->history->fence_header, "X-Fence");  // the lock policy's, recorded with each version

  auto json = nlohmann::json::parse(config_to_json(config));
  EXPECT_EQ(json["route"][0]["etag"]["on_conflict"], "merge");
  EXPECT_EQ(json["route"][0]["etag"]["merge_keys"], (nlohmann::json{{"/lines", "id"}, {"/a~1b", "sku"}}));
  EXPECT_EQ(json["route"][0]["history"], (nlohmann::json{{"keep", 5},
                                                         {"max_bytes", 2u << 20},
                                                         {"max_version_bytes", 10u << 10},
                                                         {"max_resources", 7},
                                                         {"client_key", "header:X-User"}}));
  EXPECT_EQ(config.routes.at(0).policies.at(0)->summary(), "etag(verify=upstream, merge, patch=apply, history=5)");
}

TEST(HistoryConfigTest, TheHistoryLinksUnderTheControlPrefix) {
  Config config = parse_config("[server]\ncontrol_prefix = \"/ops/\"\n" + history_config_with("", "[route.history]\n"),
                               "arbiter.toml");
  ASSERT_TRUE(history_etag_of(config.routes.at(0))->history.has_value());
  EXPECT_EQ(history_etag_of(config.routes.at(0))->control_prefix, "/ops");
  EXPECT_EQ(history_etag_of(config.routes.at(0))->history->fence_header, "");  // no lock policy on the route
}

TEST(HistoryConfigTest, ErrorsArePositionedWithTheKey) {
  EXPECT_EQ(history_errors(history_config_with("on_conflict = \"merge\"")),
            (std::vector<std::string>{"arbiter.toml:9:15: route[0].etag.on_conflict: route 'orders': a merge needs the "
                                      "version the client started from: add [route.history] to this route"}));
  EXPECT_EQ(history_errors(history_config_with("on_conflict = \"rebase\"", "[route.history]\n")),
            (std::vector<std::string>{"arbiter.toml:9:15: route[0].etag.on_conflict: route 'orders': expected "
                                      "\"reject\" or \"merge\", got \"rebase\""}));
  EXPECT_EQ(history_errors(history_config_with("patch = \"merge\"")),
            (std::vector<std::string>{"arbiter.toml:9:9: route[0].etag.patch: route 'orders': expected \"forward\" or "
                                      "\"apply\", got \"merge\""}));
  EXPECT_EQ(history_errors(history_config_with("merge_keys = { \"lines\" = \"id\" }")),
            (std::vector<std::string>{"arbiter.toml:9:26: route[0].etag.merge_keys.lines: route 'orders': invalid JSON "
                                      "pointer \"lines\"; write the array's pointer, e.g. \"/lines\""}));
  EXPECT_EQ(history_errors(history_config_with("merge_keys = { \"/lines\" = 3 }")).size(), 1u);
  EXPECT_EQ(history_errors(history_config_with("merge_keys = \"/lines\"")).size(), 1u);
  EXPECT_EQ(history_errors(history_config_with("", "[route.history]\nkeep = 0\n")).size(), 1u);
  EXPECT_EQ(history_errors(history_config_with("", "[route.history]\nkeeps = 3\n")),
            (std::vector<std::string>{"arbiter.toml:11:1: route[0].history.keeps: route 'orders': unknown key; did you "
                                      "mean 'keep'?"}));
  EXPECT_EQ(history_errors(history_config_with("", "[route.history]\nclient_key = \"cookie\"\n")).size(), 1u);
}

TEST(HistoryConfigTest, HistoryWithoutAnEtagPolicyIsRefused) {
  std::string toml =
      "[upstream.legacy]\nservers = [\"127.0.0.1:8081\"]\n\n[[route]]\nname = \"orders\"\npath = "
      "\"/orders/{id}\"\nupstream = \"legacy\"\n[route.history]\nkeep = 3\n";
  EXPECT_EQ(history_errors(toml),
            (std::vector<std::string>{"arbiter.toml:8:1: route[0].history: route 'orders': history is recorded by the "
                                      "ETag policy: add [route.etag] to this route (or remove [route.history])"}));
}

}  // namespace
}  // namespace arbiter
