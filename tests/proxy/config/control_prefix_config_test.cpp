// [server] control_prefix: read, normalised, checked with positions, and the routes that lie
// inside it refused naming both (proxy/control/control_endpoints.h).

#include <gtest/gtest.h>

#include <string>

#include "proxy/config/config.h"
#include "tests/proxy/config/config_test_support.h"

namespace arbiter {
namespace {

const std::string kLegacyUpstream = "[upstream.legacy]\nservers = [\"127.0.0.1:8081\"]\n";

std::string route_toml(const std::string& name, const std::string& path) {
  return "[[route]]\nname = \"" + name + "\"\npath = \"" + path + "\"\nupstream = \"legacy\"\n";
}

// [server] and `server` (one line, or empty), the upstream, then `routes` from line 5.
std::string config_with(const std::string& server, const std::string& routes) {
  return "[server]\n" + server + "\n" + kLegacyUpstream + routes;
}

std::vector<std::string> errors(const std::string& toml) { return testing::config_errors(toml); }

TEST(ControlPrefixConfigTest, DefaultsToArbiterAndIsNormalised) {
  EXPECT_EQ(parse_config(config_with("", route_toml("a", "/a")), "f").server.control_prefix, "/_arbiter");
  for (auto [written, normal] : {std::pair{"/ops", "/ops"}, std::pair{"/ops/", "/ops"},
                                 std::pair{"/%6Fps/%7Earb", "/ops/~arb"}, std::pair{"/a%2fb", "/a%2Fb"},
                                 std::pair{"/caf\u00e9", "/caf%C3%A9"}}) {
    Config config = parse_config(config_with("control_prefix = \"" + std::string(written) + "\"", route_toml("a", "/a")), "f");
    EXPECT_EQ(config.server.control_prefix, normal) << written;
  }
}

TEST(ControlPrefixConfigTest, BadPrefixesArePositioned) {
  auto sole = [](const std::string& value) {
    auto found = errors(config_with("control_prefix = " + value, route_toml("a", "/a")));
    EXPECT_EQ(found.size(), 1u) << value;
    return found.empty() ? std::string() : found[0];
  };
  EXPECT_EQ(sole("\"_arbiter\""), "arbiter.toml:2:18: server.control_prefix: must start with '/', e.g. \"/_arbiter\"");
  EXPECT_EQ(sole("\"/\""),
            "arbiter.toml:2:18: server.control_prefix: cannot be \"/\": Arbiter would answer every path itself; give "
            "a path such as \"/_arbiter\"");
  EXPECT_EQ(sole("\"/x/{id}\""), "arbiter.toml:2:18: server.control_prefix: a literal path: '{', '}' and '*' cannot appear");
  EXPECT_EQ(sole("\"/x/*\""), "arbiter.toml:2:18: server.control_prefix: a literal path: '{', '}' and '*' cannot appear");
  EXPECT_NE(sole("\"/a//b\"").find("arbiter.toml:2:18: server.control_prefix: path pattern \"/a//b\": segment \"\""),
            std::string::npos);
  EXPECT_NE(sole("\"/a/../b\"").find("arbiter.toml:2:18: server.control_prefix:"), std::string::npos);
  EXPECT_NE(sole("\"/a?b\"").find("'?' and '#' cannot appear"), std::string::npos);
  EXPECT_EQ(sole("7"), "arbiter.toml:2:18: server.control_prefix: expected a string, got an integer");
  EXPECT_EQ(errors(config_with("control_prefx = \"/x\"", route_toml("a", "/a"))),
            std::vector<std::string>{
                "arbiter.toml:2:1: server.control_prefx: unknown key; did you mean 'control_prefix'?"});
}

TEST(ControlPrefixConfigTest, ARouteInsideThePrefixIsRefusedNamingBoth) {
  // Routes begin on line 5 ([server], its key or a blank line, the upstream's two lines); each
  // is 4 lines, its path the third.
  std::string routes = route_toml("deep", "/_arbiter/x/{id}") + route_toml("slash", "/_arbiter/") + route_toml("index", "/_arbiter") +
                       route_toml("below", "/_arbiter/*");
  auto refused = [](int line, int index, const std::string& name, const std::string& path) {
    return "arbiter.toml:" + std::to_string(line) + ":8: route[" + std::to_string(index) + "].path: route '" + name +
           "': path '" + path +
           "' lies inside [server] control_prefix '/_arbiter' (the default), whose paths Arbiter answers itself "
           "before routing; move the route, or set another control_prefix";
  };
  EXPECT_EQ(errors(config_with("", routes)),
            (std::vector<std::string>{refused(7, 0, "deep", "/_arbiter/x/{id}"), refused(11, 1, "slash", "/_arbiter/"),
                                      refused(15, 2, "index", "/_arbiter"), refused(19, 3, "below", "/_arbiter/*")}));
  // A configured prefix is named with its line; a route spelling it differently is the same path.
  auto found = errors(config_with("control_prefix = \"/ops/\"", route_toml("ops", "/%6Fps/status")));
  ASSERT_EQ(found.size(), 1u);
  EXPECT_NE(found[0].find("arbiter.toml:7:8: route[0].path: route 'ops': path '/%6Fps/status' lies inside [server] "
                          "control_prefix '/ops' (line 2)"),
            std::string::npos)
      << found[0];
}

TEST(ControlPrefixConfigTest, RoutesThatOnlyOverlapThePrefixStayLegal) {
  // A catch-all, parameters where the prefix has literals, a neighbour sharing its first letters,
  // a route above the prefix: the prefix takes its own paths first and leaves them the rest.
  for (const char* path : {"/*", "/{tenant}/*", "/{section}/x", "/_arbiterx", "/_arbiter-x/*", "/_Arbiter/x"}) {
    EXPECT_TRUE(errors(config_with("", route_toml("r", path))).empty()) << path;
  }
  EXPECT_TRUE(errors(config_with("control_prefix = \"/ops/arbiter\"", route_toml("r", "/ops/*"))).empty());
  EXPECT_TRUE(errors(config_with("control_prefix = \"/ops/arbiter\"", route_toml("r", "/ops/{x}/y"))).empty());
}

TEST(ControlPrefixConfigTest, CaseInsensitivePathsCompareTheRouteWithoutCase) {
  auto found = errors(config_with("case_insensitive_paths = true", route_toml("r", "/_ARBITER/x")));
  ASSERT_EQ(found.size(), 1u);
  EXPECT_NE(found[0].find("route 'r': path '/_ARBITER/x' lies inside [server] control_prefix '/_arbiter'"),
            std::string::npos)
      << found[0];
}

}  // namespace
}  // namespace arbiter
