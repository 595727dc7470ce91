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
