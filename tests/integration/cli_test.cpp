// The arbiter command line: --version, --check on good and bad files.

#include <gtest/gtest.h>

#include "tests/support/harness.h"

namespace {

using harness::run_arbiter;
using harness::write_temp_file;

constexpr std::string_view kValidConfig = R"(
[server]
listen = "127.0.0.1:0"

[upstream.legacy]
servers = ["127.0.0.1:8081"]

[[route]]
name = "items"
path = "/items/{id}"
methods = ["GET", "PUT"]
upstream = "legacy"

[[route]]
name = "rest"
path = "/*"
upstream = "legacy"
)";

TEST(Cli, VersionPrintsTheVersion) {
  auto result = run_arbiter({"--version"});
  EXPECT_EQ(result.exit_code, std::optional<int>(0));
  EXPECT_EQ(result.stdout_text.rfind("arbiter ", 0), 0u) << result.stdout_text;
}

TEST(Cli, CheckPrintsTheRouteTable) {
  auto file = write_temp_file(kValidConfig, ".toml");
  auto result = run_arbiter({"--check", "-c", file.path()});
  EXPECT_EQ(result.exit_code, std::optional<int>(0)) << result.stderr_text;
  EXPECT_NE(result.stdout_text.find("items"), std::string::npos);
  EXPECT_NE(result.stdout_text.find("/items/{id}"), std::string::npos);
  EXPECT_NE(result.stdout_text.find("GET"), std::string::npos);
  EXPECT_NE(result.stdout_text.find("127.0.0.1:8081"), std::string::npos);
  EXPECT_NE(result.stdout_text.find("rest"), std::string::npos);
}

TEST(Cli, CheckNamesFileLineColumnAndKeyOfEachError) {
  std::string broken(kValidConfig);
  broken.replace(broken.find("listen = \"127.0.0.1:0\""), 22, "listen = \"127.0.0.1:0\"\nheader_timeout = \"10 seconds\"");
  broken += "\n[[route]]\nname = \"late\"\npath = \"/late\"\nupstream = \"nowhere\"\n";
  auto file = write_temp_file(broken, ".toml");
  auto result = run_arbiter({"--check", "-c", file.path()});
  EXPECT_EQ(result.exit_code, std::optional<int>(1));
  EXPECT_NE(result.stderr_text.find(file.path() + ":4:18: server.header_timeout:"), std::string::npos)
      << result.stderr_text;
  EXPECT_NE(result.stderr_text.find("nowhere"), std::string::npos) << result.stderr_text;
  EXPECT_NE(result.stderr_text.find(file.path() + ":23:"), std::string::npos) << result.stderr_text;
}

constexpr std::string_view kPolicyConfig = R"(
[upstream.legacy]
servers = ["127.0.0.1:8081"]

[[route]]
name = "accounts"
path = "/accounts/{id}"
upstream = "legacy"
[[route.limit]]
name = "per-key"
rate = "10/m"
key = "header:X-Api-Key"
methods = ["PUT"]
[route.concurrency]
max_in_flight = 4
max_queue = 0
[route.etag]
require_if_match = true
verify = "cache"
conflict_status = 412
)";

TEST(CliExplain, AConditionalWriteShowsEveryPolicyInOrder) {
  auto file = write_temp_file(kPolicyConfig, ".toml");
  auto result = run_arbiter({"explain", "-c", file.path(), "PUT", "/accounts/7", "-H", "If-Match: \"v1\"", "-H",
                             "X-Api-Key: k-42"});
  ASSERT_EQ(result.exit_code, std::optional<int>(0)) << result.stderr_text;
  const std::string& out = result.stdout_text;
  EXPECT_NE(out.find("route:     accounts (" + file.path() + ":5)"), std::string::npos) << out;
  EXPECT_NE(out.find("id=7"), std::string::npos) << out;
  std::size_t limit = out.find("1. rate_limit: limit 'per-key'");
  std::size_t slots = out.find("2. concurrency: takes one of 4 in-flight slots");
  std::size_t etag = out.find("3. etag: write to resource '/accounts/7'");
  ASSERT_NE(limit, std::string::npos) << out;
  ASSERT_NE(slots, std::string::npos) << out;
  ASSERT_NE(etag, std::string::npos) << out;
  EXPECT_LT(limit, slots);
  EXPECT_LT(slots, etag);
  EXPECT_NE(out.find("bucket 'header:k-42'"), std::string::npos) << out;
  EXPECT_NE(out.find("If-Match \"v1\" is compared strongly"), std::string::npos) << out;
  EXPECT_NE(out.find("from the ETag table"), std::string::npos) << out;
  EXPECT_NE(out.find("answers 412"), std::string::npos) << out;
}

TEST(CliExplain, AReadSkipsAMethodFilteredLimitAndAWriteWithoutIfMatchIs428) {
  auto file = write_temp_file(kPolicyConfig, ".toml");
  auto read = run_arbiter({"explain", "-c", file.path(), "GET", "/accounts/7"});
  ASSERT_EQ(read.exit_code, std::optional<int>(0)) << read.stderr_text;
  EXPECT_NE(read.stdout_text.find("does not apply to GET"), std::string::npos) << read.stdout_text;
  EXPECT_NE(read.stdout_text.find("a 2xx answer leaves with a strong ETag"), std::string::npos) << read.stdout_text;
  auto blind = run_arbiter({"explain", "-c", file.path(), "DELETE", "/accounts/7"});
  EXPECT_NE(blind.stdout_text.find("answered 428"), std::string::npos) << blind.stdout_text;
}

TEST(CliExplain, UnmatchedPathsAndMethodsAreExplained) {
  auto file = write_temp_file(kPolicyConfig, ".toml");
  auto none = run_arbiter({"explain", "-c", file.path(), "GET", "/elsewhere"});
  EXPECT_NE(none.stdout_text.find("none matches: 404"), std::string::npos) << none.stdout_text;
  auto bad = run_arbiter({"explain", "-c", file.path(), "GET"});
  EXPECT_EQ(bad.exit_code, std::optional<int>(2));
}

// explain normalises the target as the server does (issue #12 item 1).
TEST(CliExplain, AnAliasedPathIsNormalisedBeforeRouting) {
  auto file = write_temp_file(kPolicyConfig, ".toml");
  auto alias = run_arbiter({"explain", "-c", file.path(), "PUT", "/x/..//%61ccounts/./%37?q=1"});
  ASSERT_EQ(alias.exit_code, std::optional<int>(0)) << alias.stderr_text;
  const std::string& out = alias.stdout_text;
  EXPECT_NE(out.find("normalised: /accounts/7?q=1"), std::string::npos) << out;
  EXPECT_NE(out.find("route:     accounts"), std::string::npos) << out;
  EXPECT_NE(out.find("id=7"), std::string::npos) << out;
  EXPECT_NE(out.find("write to resource '/accounts/7'"), std::string::npos) << out;
  auto above = run_arbiter({"explain", "-c", file.path(), "GET", "/accounts/../../etc"});
  ASSERT_EQ(above.exit_code, std::optional<int>(0)) << above.stderr_text;
  EXPECT_NE(above.stdout_text.find("400 problem+json (urn:arbiter:problem:malformed-path)"), std::string::npos)
      << above.stdout_text;
}

TEST(Cli, MissingFileIsNamed) {
  auto result = run_arbiter({"--check", "-c", "/nonexistent/arbiter.toml"});
  EXPECT_EQ(result.exit_code, std::optional<int>(1));
  EXPECT_NE(result.stderr_text.find("/nonexistent/arbiter.toml"), std::string::npos);
}

TEST(Cli, UnknownArgumentIsAUsageError) {
  auto result = run_arbiter({"--frobnicate"});
  EXPECT_EQ(result.exit_code, std::optional<int>(2));
  EXPECT_NE(result.stderr_text.find("usage:"), std::string::npos);
}

}  // namespace
