// The local handler registry (matching, its 404/405 problems), the control namespace test and
// index, and the admin endpoints as handlers, with a fake responder: no sockets.

#include "proxy/control/handler_registry.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "proxy/control/admin_endpoints.h"
#include "proxy/control/control_endpoints.h"
#include "proxy/exchange/runtime.h"
#include "tests/proxy/control/local_responder_support.h"

namespace arbiter {
namespace {

using nlohmann::json;

using FakeResponder = ::arbiter::testing::RecordingResponder;

// Answers 200 with its name, so a test sees which handler the registry chose.
struct NamedHandler final : LocalHandler {
  explicit NamedHandler(std::string n) : name(std::move(n)) {}
  void handle(const LocalRequest& request, LocalResponder& responder) override {
    responder.reply(200, {}, name + " " + std::string(request.path) + " " + std::string(request.query));
  }
  std::string name;
};

std::shared_ptr<LocalHandler> named(std::string name) { return std::make_shared<NamedHandler>(std::move(name)); }

FakeResponder dispatch(const HandlerRegistry& registry, std::string_view method, std::string_view path,
                       std::string_view mount = {}, std::string_view query = {}) {
  HeaderList headers;
  FakeResponder responder;
  registry.dispatch(LocalRequest{method, path, path, query, headers, {}, "rid", mount, {}}, responder);
  EXPECT_EQ(responder.answers, 1) << method << " " << path;
  return responder;
}

HandlerRegistry sample() {
  HandlerRegistry registry("sample");
  registry.add("/metrics", PathMatch::Exact, {"GET"}, "metrics", named("metrics"));
  registry.add("/feeds/", PathMatch::Prefix, {"GET"}, "feeds", named("feeds"));
  registry.add("/feeds/special/", PathMatch::Prefix, {"GET"}, "special feeds", named("special"));
  registry.add("/feeds/one", PathMatch::Exact, {"POST"}, "one feed", named("one"));
  registry.add("/items", PathMatch::Exact, {"GET"}, "read", named("items-get"));
  registry.add("/items", PathMatch::Exact, {"POST", "DELETE"}, "write", named("items-write"));
  return registry;
}

TEST(HandlerRegistryTest, ExactPathsPrefixesAndMethods) {
  HandlerRegistry registry = sample();
  EXPECT_EQ(dispatch(registry, "GET", "/metrics").body, "metrics /metrics ");
  EXPECT_EQ(dispatch(registry, "HEAD", "/metrics").body, "metrics /metrics ");  // GET takes HEAD
  EXPECT_EQ(dispatch(registry, "GET", "/feeds/").body, "feeds /feeds/ ");
  EXPECT_EQ(dispatch(registry, "GET", "/feeds/a/b", {}, "x=1").body, "feeds /feeds/a/b x=1");
  EXPECT_EQ(dispatch(registry, "GET", "/feeds/special/x").body, "special /feeds/special/x ");  // the longest prefix
  EXPECT_EQ(dispatch(registry, "POST", "/feeds/one").body, "one /feeds/one ");  // exact before any prefix
  EXPECT_EQ(dispatch(registry, "GET", "/items").body, "items-get /items ");
  EXPECT_EQ(dispatch(registry, "DELETE", "/items").body, "items-write /items ");  // one path, two handlers
}

TEST(HandlerRegistryTest, AnotherMethodIs405WithAllow) {
  HandlerRegistry registry = sample();
  FakeResponder refused = dispatch(registry, "DELETE", "/metrics");
  EXPECT_EQ(refused.status, 405);
  EXPECT_EQ(refused.fields.find("Allow").value_or(""), "GET, HEAD");
  EXPECT_EQ(refused.problem()["type"], "urn:arbiter:problem:method-not-allowed");
  EXPECT_EQ(refused.problem()["detail"], "/metrics takes GET, HEAD, not DELETE.");
  EXPECT_EQ(refused.problem()["request-id"], "rid");
  // The most specific entry decides: the exact /feeds/one takes POST only.
  EXPECT_EQ(dispatch(registry, "GET", "/feeds/one").fields.find("Allow").value_or(""), "POST");
  EXPECT_EQ(dispatch(registry, "PUT", "/items").fields.find("Allow").value_or(""), "GET, HEAD, POST, DELETE");
  EXPECT_EQ(dispatch(registry, "post", "/metrics").status, 405);  // methods are case-sensitive
}

TEST(HandlerRegistryTest, AnUnknownPathIs404ListingTheEndpoints) {
  HandlerRegistry registry = sample();
  FakeResponder missing = dispatch(registry, "GET", "/metricz");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.fields.find("Content-Type").value_or(""), kProblemContentType);
  EXPECT_EQ(missing.problem()["type"], "urn:arbiter:problem:not-found");
  EXPECT_EQ(missing.problem()["detail"],
            "No sample endpoint /metricz; there are /metrics, /feeds/*, /feeds/special/*, POST /feeds/one, /items and "
            "POST/DELETE /items.");
  EXPECT_EQ(dispatch(registry, "DELETE", "/nowhere").status, 404);  // 404 before 405, as routes
  EXPECT_EQ(dispatch(registry, "GET", "/feeds").status, 404);        // a prefix takes what lies below it
  EXPECT_EQ(dispatch(registry, "GET", "/metrics/").status, 404);
}

TEST(HandlerRegistryTest, PathsAreLookedUpUnderTheMount) {
  HandlerRegistry registry("control");
  add_control_endpoints(registry);
  registry.add("/feeds/", PathMatch::Prefix, {"GET"}, "feeds", named("feeds"));
  FakeResponder index = dispatch(registry, "GET", "/_arbiter/", "/_arbiter");
  ASSERT_EQ(index.status, 200);
  EXPECT_EQ(index.fields.find("Content-Type").value_or(""), "application/json");
  EXPECT_EQ(json::parse(index.body),
            json::parse(R"json({"endpoints":[
              {"path":"/_arbiter/","methods":["GET","HEAD"],"summary":"the control endpoints enabled (this list)"},
              {"path":"/_arbiter/feeds/*","methods":["GET","HEAD"],"summary":"feeds"}]})json"));
  EXPECT_EQ(dispatch(registry, "GET", "/_arbiter/feeds/x", "/_arbiter").body, "feeds /_arbiter/feeds/x ");
  FakeResponder bare = dispatch(registry, "GET", "/_arbiter", "/_arbiter");
  EXPECT_EQ(bare.status, 404);
  EXPECT_EQ(bare.problem()["detail"], "No control endpoint /_arbiter; there are /_arbiter/ and /_arbiter/feeds/*.");
}

TEST(HandlerRegistryTest, RegistrationMistakesThrow) {
  HandlerRegistry registry = sample();
  EXPECT_THROW(registry.add("metrics", PathMatch::Exact, {"GET"}, "", named("x")), std::invalid_argument);
  EXPECT_THROW(registry.add("/x", PathMatch::Exact, {}, "", named("x")), std::invalid_argument);
  EXPECT_THROW(registry.add("/items", PathMatch::Exact, {"DELETE"}, "", named("x")), std::invalid_argument);
  EXPECT_THROW(registry.add("/metrics", PathMatch::Exact, {"HEAD"}, "", named("x")), std::invalid_argument);
  EXPECT_NO_THROW(registry.add("/metrics", PathMatch::Prefix, {"GET"}, "", named("x")));  // another kind of match
}

TEST(HandlerRegistryTest, ARegistryWithNothingSaysSo) {
  HandlerRegistry empty("control");
  EXPECT_EQ(dispatch(empty, "GET", "/x").problem()["detail"], "No control endpoint /x; there are none.");
}

TEST(ControlNamespaceTest, ThePrefixAndWhatLiesBelowIt) {
  EXPECT_TRUE(in_control_namespace("/_arbiter", "/_arbiter", false));
  EXPECT_TRUE(in_control_namespace("/_arbiter/", "/_arbiter", false));
  EXPECT_TRUE(in_control_namespace("/_arbiter/a/b", "/_arbiter", false));
  EXPECT_FALSE(in_control_namespace("/_arbiterx", "/_arbiter", false));
  EXPECT_FALSE(in_control_namespace("/_arbite", "/_arbiter", false));
  EXPECT_FALSE(in_control_namespace("/", "/_arbiter", false));
  EXPECT_FALSE(in_control_namespace("/_Arbiter/", "/_arbiter", false));
  EXPECT_TRUE(in_control_namespace("/_Arbiter/", "/_arbiter", true));
  EXPECT_TRUE(in_control_namespace("/ops/arbiter/x", "/ops/arbiter", false));
  EXPECT_FALSE(in_control_namespace("/ops/x", "/ops/arbiter", false));
}

// ---- the admin endpoints

struct FakeAdmin final : AdminServices {
  std::shared_ptr<const Runtime> current_runtime() const override { return runtime; }
  bool shutting_down() const override { return draining; }
  ReloadOutcome reload_configuration() override {
    ++reloads;
    return outcome;
  }
  std::shared_ptr<const Runtime> runtime;
  bool draining = false;
  ReloadOutcome outcome;
  int reloads = 0;
};

class AdminEndpointsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Config config = parse_config(
        "[upstream.u]\nservers = [\"127.0.0.1:1\"]\n[[route]]\nname = \"r\"\npath = \"/*\"\nupstream = \"u\"\n",
        "admin.toml");
    admin_.runtime = std::make_shared<const Runtime>(std::move(config), state_);
    add_admin_endpoints(registry_, admin_);
  }
  RuntimeState state_;
  FakeAdmin admin_;
  HandlerRegistry registry_{"admin"};
};

TEST_F(AdminEndpointsTest, AnswerAsTheAdminListenerAlwaysHas) {
  FakeResponder health = dispatch(registry_, "GET", "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, R"({"status":"ok"})");
  EXPECT_EQ(health.fields.find("Content-Type").value_or(""), "application/json");
  EXPECT_EQ(dispatch(registry_, "GET", "/readyz").body, R"({"status":"ready"})");
  admin_.draining = true;
  FakeResponder draining = dispatch(registry_, "GET", "/readyz");
  EXPECT_EQ(draining.status, 503);
  EXPECT_EQ(draining.body, R"({"status":"draining"})");
  FakeResponder config = dispatch(registry_, "GET", "/config");
  EXPECT_EQ(json::parse(config.body)["file"], "admin.toml");
  FakeResponder metrics = dispatch(registry_, "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.fields.find("Content-Type").value_or(""), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(dispatch(registry_, "GET", "/metricz").problem()["detail"],
            "No admin endpoint /metricz; there are /healthz, /readyz, /metrics, /config and POST /reload.");
  FakeResponder get_reload = dispatch(registry_, "GET", "/reload");
  EXPECT_EQ(get_reload.status, 405);
  EXPECT_EQ(get_reload.fields.find("Allow").value_or(""), "POST");
  EXPECT_EQ(admin_.reloads, 0);
}

TEST_F(AdminEndpointsTest, ReloadAnswersWhatTheReloadDid) {
  admin_.outcome.applied = true;
  admin_.outcome.notes = {"server.workers (2 -> 3) needs a restart; the running listeners are kept"};
  FakeResponder applied = dispatch(registry_, "POST", "/reload");
  EXPECT_EQ(applied.status, 200);
  EXPECT_EQ(json::parse(applied.body),
            json({{"status", "reloaded"}, {"file", "admin.toml"}, {"restart_needed_for", admin_.outcome.notes}}));
  admin_.outcome = ReloadOutcome{false, {ConfigDiagnostic{"admin.toml", 3, 9, "server.listen", "bad"}}, {}};
  FakeResponder refused = dispatch(registry_, "POST", "/reload");
  EXPECT_EQ(refused.status, 422);
  json problem = refused.problem();
  EXPECT_EQ(problem["type"], "urn:arbiter:problem:invalid-configuration");
  EXPECT_EQ(problem["errors"][0]["line"], 3);
  EXPECT_EQ(problem["errors"][0]["text"], "admin.toml:3:9: server.listen: bad");
  EXPECT_EQ(admin_.reloads, 2);
}

}  // namespace
}  // namespace arbiter
