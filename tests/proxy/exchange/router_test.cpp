#include "proxy/exchange/router.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "proxy/http/path_normalization.h"

namespace arbiter {
namespace {

// Runs pattern.match on a fresh params vector; nullopt when it does not match. The names in
// the result are views into `pattern`, so it must outlive them.
std::optional<std::vector<PathParam>> match(const PathPattern& pattern, std::string_view path) {
  std::vector<PathParam> params;
  if (!pattern.match(path, params)) {
    EXPECT_TRUE(params.empty()) << pattern.text() << " left captures behind for " << path;
    return std::nullopt;
  }
  return params;
}

bool matches(std::string_view pattern, std::string_view path) { return match(PathPattern(pattern), path).has_value(); }

RouteConfig route(std::string name, std::string path, std::vector<std::string> methods = {}) {
  RouteConfig r;
  r.name = std::move(name);
  r.path = std::move(path);
  r.methods = std::move(methods);
  r.upstream = "backend";
  return r;
}

// ---- PathPattern ----

TEST(PathPatternTest, RejectsMalformedPatterns) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "path pattern \"\": must start with '/'"},
      {"items", "path pattern \"items\": must start with '/'"},
      {"/a/*/b", "path pattern \"/a/*/b\": '*' may only be the last segment"},
      {"/a*", "path pattern \"/a*\": segment \"a*\": '{', '}' and '*' may only stand for a whole segment, as {name} or *"},
      {"/{}", "path pattern \"/{}\": a parameter needs a name, e.g. {id}"},
      {"/{a-b}", "path pattern \"/{a-b}\": parameter name \"a-b\" may contain only letters, digits and '_'"},
      {"/{id}/x/{id}", "path pattern \"/{id}/x/{id}\": parameter {id} appears twice"},
      {"/v{id}", "path pattern \"/v{id}\": segment \"v{id}\": '{', '}' and '*' may only stand for a whole segment, as {name} or *"},
      {"/{id", "path pattern \"/{id\": segment \"{id\": '{', '}' and '*' may only stand for a whole segment, as {name} or *"},
      {"/a}", "path pattern \"/a}\": segment \"a}\": '{', '}' and '*' may only stand for a whole segment, as {name} or *"},
      {"/{{id}}", "path pattern \"/{{id}}\": parameter name \"{id}\" may contain only letters, digits and '_'"},
      {"/a?x=1", "path pattern \"/a?x=1\": '?' and '#' cannot appear: the query is not part of the matched path"},
  };
  for (const auto& [pattern, message] : cases) {
    try {
      PathPattern p(pattern);
      ADD_FAILURE() << "accepted " << pattern;
    } catch (const std::invalid_argument& e) {
      EXPECT_STREQ(e.what(), message);
    }
  }
}

TEST(PathPatternTest, KeepsItsText) { EXPECT_EQ(PathPattern("/items/{id}").text(), "/items/{id}"); }

TEST(PathPatternTest, LiteralsMatchExactly) {
  EXPECT_TRUE(matches("/health", "/health"));
  EXPECT_FALSE(matches("/health", "/Health"));
  EXPECT_FALSE(matches("/health", "/healthz"));
  EXPECT_FALSE(matches("/health", "/health/x"));
  EXPECT_FALSE(matches("/a/b", "/a"));
  EXPECT_FALSE(matches("/health", "health"));  // not a path
  EXPECT_FALSE(matches("/health", ""));
}

TEST(PathPatternTest, RootMatchesOnlyRoot) {
  EXPECT_TRUE(matches("/", "/"));
  EXPECT_FALSE(matches("/", "/a"));
  EXPECT_FALSE(matches("/", "//"));
  EXPECT_FALSE(matches("/", ""));
}

TEST(PathPatternTest, TrailingSlashMatters) {
  EXPECT_TRUE(matches("/a/", "/a/"));
  EXPECT_FALSE(matches("/a/", "/a"));
  EXPECT_FALSE(matches("/a", "/a/"));
  EXPECT_FALSE(matches("/items/{id}", "/items/"));  // a parameter never matches an empty segment
  EXPECT_FALSE(matches("/items/{id}", "/items/1/"));
  EXPECT_TRUE(matches("/items/{id}/", "/items/1/"));
}

TEST(PathPatternTest, ParamsCaptureViewsIntoThePath) {
  PathPattern pattern("/users/{user_id}/orders/{order}");
  const std::string path = "/users/42/orders/a-7";
  std::vector<PathParam> params;
  ASSERT_TRUE(pattern.match(path, params));
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].name, "user_id");
  EXPECT_EQ(params[0].value, "42");
  EXPECT_EQ(params[0].value.data(), path.data() + 7);
  EXPECT_EQ(params[1].name, "order");
  EXPECT_EQ(params[1].value, "a-7");
  EXPECT_EQ(params[1].value.data(), path.data() + 17);
}

TEST(PathPatternTest, ParamsAreRawSegments) {
  PathPattern pattern("/files/{name}");
  auto params = match(pattern, "/files/a%2Fb.txt");
  ASSERT_TRUE(params.has_value());
  ASSERT_EQ(params->size(), 1u);
  EXPECT_EQ((*params)[0].value, "a%2Fb.txt");  // percent-decoding is not the router's business
}

TEST(PathPatternTest, MatchAppendsAndFailureLeavesParamsAsTheyWere) {
  PathPattern pattern("/a/{x}/b/{y}");
  std::vector<PathParam> params = {{"earlier", "kept"}};
  EXPECT_FALSE(pattern.match("/a/1/c/2", params));  // fails after capturing {x}
  ASSERT_EQ(params.size(), 1u);
  EXPECT_EQ(params[0].name, "earlier");

  ASSERT_TRUE(pattern.match("/a/1/b/2", params));
  ASSERT_EQ(params.size(), 3u);
  EXPECT_EQ(params[0].value, "kept");
  EXPECT_EQ(params[1].value, "1");
  EXPECT_EQ(params[2].value, "2");
}

TEST(PathPatternTest, RestMatchesZeroOrMoreSegments) {
  EXPECT_TRUE(matches("/orders/*", "/orders"));
  EXPECT_TRUE(matches("/orders/*", "/orders/"));
  EXPECT_TRUE(matches("/orders/*", "/orders/1"));
  EXPECT_TRUE(matches("/orders/*", "/orders/1/x"));
  EXPECT_FALSE(matches("/orders/*", "/order"));
  EXPECT_FALSE(matches("/orders/*", "/ordersx"));
  EXPECT_FALSE(matches("/orders/*", "/"));
}

TEST(PathPatternTest, RestAloneMatchesEverything) {
  for (const char* path : {"/", "/a", "/a/", "/a/b/c", "//"}) EXPECT_TRUE(matches("/*", path)) << path;
  EXPECT_FALSE(matches("/*", ""));
}

TEST(PathPatternTest, RestAfterParamCapturesTheParamOnly) {
  PathPattern pattern("/users/{id}/*");  // the names are views into it
  auto params = match(pattern, "/users/7/photos/1");
  ASSERT_TRUE(params.has_value());
  ASSERT_EQ(params->size(), 1u);
  EXPECT_EQ((*params)[0].name, "id");
  EXPECT_EQ((*params)[0].value, "7");
}

TEST(PathPatternTest, Covers) {
  struct Case {
    const char* wide;
    const char* narrow;
    bool expected;
  };
  const Case cases[] = {
      {"/a", "/a", true},
      {"/a", "/b", false},
      {"/{id}", "/a", true},
      {"/{id}", "/{other}", true},
      {"/a", "/{id}", false},
      {"/items/{id}", "/items/new", true},
      {"/items/new", "/items/{id}", false},
      {"/a/{id}", "/a/", false},  // {id} never matches the empty segment "/a/" has
      {"/a/{id}", "/a", false},
      {"/a/*", "/a", true},  // '*' covers nothing at all too
      {"/a/*", "/a/", true},
      {"/a/*", "/a/b/c", true},
      {"/a/*", "/a/{id}/*", true},
      {"/a/*", "/b/*", false},
      {"/*", "/", true},
      {"/*", "/anything/{x}/*", true},
      {"/a/{id}", "/a/*", false},  // "/a/*" also matches "/a" and "/a/b/c"
      {"/a", "/a/*", false},
      {"/a/{x}/c", "/a/b/c", true},
      {"/a/{x}/c", "/a/b/d", false},
      {"/a/{x}", "/a/b/c", false},
      {"/", "/", true},
      {"/", "/*", false},
      {"/{id}", "/", false},
      {"/a/", "/a", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(PathPattern(c.wide).covers(PathPattern(c.narrow)), c.expected) << c.wide << " covers " << c.narrow;
  }
}

// ---- Router ----

TEST(RouterTest, FirstMatchWinsAndCapturesParams) {
  Router router({route("new", "/items/new"), route("item", "/items/{id}"), route("all", "/*")});
  RouteMatch m;
  ASSERT_EQ(router.match("GET", "/items/new", m), Router::Outcome::Matched);
  EXPECT_EQ(m.route_index, 0u);
  EXPECT_TRUE(m.params.empty());

  ASSERT_EQ(router.match("GET", "/items/42", m), Router::Outcome::Matched);
  EXPECT_EQ(m.route_index, 1u);
  ASSERT_EQ(m.params.size(), 1u);
  EXPECT_EQ(m.params[0].name, "id");
  EXPECT_EQ(m.params[0].value, "42");

  ASSERT_EQ(router.match("GET", "/items", m), Router::Outcome::Matched);
  EXPECT_EQ(m.route_index, 2u);
  EXPECT_TRUE(m.params.empty());  // the captures of the earlier attempt are gone
}

TEST(RouterTest, ReusedMatchDropsPreviousParams) {
  Router router({route("a", "/a/{x}/b"), route("c", "/a/{y}")});
  RouteMatch m;
  ASSERT_EQ(router.match("GET", "/a/1/b", m), Router::Outcome::Matched);
  ASSERT_EQ(m.params.size(), 1u);
  EXPECT_EQ(m.params[0].name, "x");
  ASSERT_EQ(router.match("GET", "/a/2", m), Router::Outcome::Matched);
  EXPECT_EQ(m.route_index, 1u);
  ASSERT_EQ(m.params.size(), 1u);
  EXPECT_EQ(m.params[0].name, "y");
  EXPECT_EQ(m.params[0].value, "2");
}

TEST(RouterTest, NotFound) {
  Router router({route("item", "/items/{id}", {"GET"})});
  RouteMatch m;
  std::string allowed = "untouched";
  EXPECT_EQ(router.match("GET", "/orders/1", m, &allowed), Router::Outcome::NotFound);
  EXPECT_EQ(allowed, "untouched");
  EXPECT_TRUE(m.params.empty());
}

TEST(RouterTest, MethodsFilterRoutes) {
  Router router({route("read", "/items/{id}", {"GET"}), route("write", "/items/{id}", {"PUT", "DELETE"}),
                 route("any", "/items/{id}/*")});
  RouteMatch m;
  ASSERT_EQ(router.match("PUT", "/items/1", m), Router::Outcome::Matched);
  EXPECT_EQ(m.route_index, 1u);
  ASSERT_EQ(router.match("GET", "/items/1", m), Router::Outcome::Matched);
  EXPECT_EQ(m.route_index, 0u);
  // Methods are case-sensitive (RFC 9110 section 9.1): "get" is not GET, so only "any" takes it.
  EXPECT_EQ(router.match("get", "/items/1", m), Router::Outcome::Matched);
  EXPECT_EQ(m.route_index, 2u);
}

TEST(RouterTest, HeadIsTakenWhereGetIs) {
  Router router({route("write", "/items", {"POST"}), route("read", "/items", {"GET"})});
  RouteMatch m;
  ASSERT_EQ(router.match("HEAD", "/items", m), Router::Outcome::Matched);
  EXPECT_EQ(m.route_index, 1u);
}

TEST(RouterTest, HeadIsNotTakenWhereOnlyOtherMethodsAre) {
  Router router({route("write", "/items", {"POST"})});
  RouteMatch m;
  std::string allowed;
  EXPECT_EQ(router.match("HEAD", "/items", m, &allowed), Router::Outcome::MethodNotAllowed);
  EXPECT_EQ(allowed, "POST");
}

TEST(RouterTest, MethodNotAllowedListsTheUnionOfMatchingRoutes) {
  Router router({route("read", "/items/{id}", {"GET"}), route("other", "/orders/*", {"POST"}),
                 route("write", "/items/*", {"PUT", "GET"})});
  RouteMatch m;
  std::string allowed;
  EXPECT_EQ(router.match("DELETE", "/items/1", m, &allowed), Router::Outcome::MethodNotAllowed);
  EXPECT_EQ(allowed, "GET, HEAD, PUT");
  EXPECT_TRUE(m.params.empty());

  // Without somewhere to put the list, the outcome is the same.
  EXPECT_EQ(router.match("DELETE", "/items/1", m), Router::Outcome::MethodNotAllowed);
}

TEST(RouterTest, AllowedIsReplacedNotAppended) {
  Router router({route("write", "/items", {"POST"})});
  RouteMatch m;
  std::string allowed = "stale";
  EXPECT_EQ(router.match("GET", "/items", m, &allowed), Router::Outcome::MethodNotAllowed);
  EXPECT_EQ(allowed, "POST");
}

TEST(RouterTest, ConstructorNamesTheRouteWithABadPattern) {
  try {
    Router router({route("ok", "/a"), route("broken", "/a/*/b")});
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "route 'broken': path pattern \"/a/*/b\": '*' may only be the last segment");
  }
}

TEST(RouterTest, ShadowedByAnEarlierRouteThatTakesEverything) {
  Router router({route("all", "/*"), route("items", "/items/{id}", {"GET"}), route("any", "/x")});
  auto shadowed_by = router.shadowing();
  EXPECT_EQ(shadowed_by[0], std::nullopt);
  EXPECT_EQ(shadowed_by[1], 0u);
  EXPECT_EQ(shadowed_by[2], 0u);
}

TEST(RouterTest, ShadowedByNamesTheEarliestCoveringRoute) {
  Router router({route("a", "/a"), route("items", "/items/*"), route("item", "/items/{id}"),
                 route("new", "/items/new")});
  auto shadowed_by = router.shadowing();
  EXPECT_EQ(shadowed_by[2], 1u);
  EXPECT_EQ(shadowed_by[3], 1u);
}

TEST(RouterTest, ShadowedWhenTheEarlierRouteTakesEveryMethod) {
  Router router({route("rw", "/items/{id}", {"GET", "PUT"}), route("read", "/items/{id}", {"GET"}),
                 route("head", "/items/{id}", {"HEAD"})});
  auto shadowed_by = router.shadowing();
  EXPECT_EQ(shadowed_by[1], 0u);
  EXPECT_EQ(shadowed_by[2], 0u);  // GET takes HEAD too
}

TEST(RouterTest, NotShadowedWhenSomeMethodGetsThrough) {
  Router router({route("read", "/items/{id}", {"GET"}), route("write", "/items/{id}", {"GET", "PUT"}),
                 route("any", "/items/{id}")});
  auto shadowed_by = router.shadowing();
  EXPECT_EQ(shadowed_by[1], std::nullopt);
  EXPECT_EQ(shadowed_by[2], std::nullopt);  // an empty list is every method, more than GET
}

TEST(RouterTest, NotShadowedWhenThePathOnlyOverlaps) {
  Router router({route("new", "/items/new"), route("item", "/items/{id}"), route("deep", "/items/{id}/*"),
                 route("root", "/"), route("all", "/*")});
  auto shadowed_by = router.shadowing();
  ASSERT_EQ(shadowed_by.size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(shadowed_by[i], std::nullopt) << i;
}

TEST(RouterTest, ShadowedByIgnoresLaterRoutesAndHasOneEntryPerRoute) {
  Router router({route("item", "/items/{id}"), route("all", "/*")});
  auto shadowed_by = router.shadowing();
  ASSERT_EQ(shadowed_by.size(), 2u);  // nothing for an index past the routes
  EXPECT_EQ(shadowed_by[0], std::nullopt);
  EXPECT_EQ(shadowed_by[1], std::nullopt);
}

// The definition shadowing()'s trie implements, pair by pair: the earliest earlier route whose
// pattern covers route i's and that takes every method route i takes (an empty list is every
// method; GET takes HEAD).
std::optional<std::size_t> reference_shadowed_by(const std::vector<RouteConfig>& routes, std::size_t i) {
  auto takes = [](const std::vector<std::string>& methods, const std::string& method) {
    auto has = [&](const std::string& m) { return std::find(methods.begin(), methods.end(), m) != methods.end(); };
    return methods.empty() || has(method) || (method == "HEAD" && has("GET"));
  };
  const RouteConfig& later = routes[i];
  for (std::size_t j = 0; j < i; ++j) {
    const RouteConfig& earlier = routes[j];
    if (!PathPattern(earlier.path).covers(PathPattern(later.path))) continue;
    bool takes_every_method = later.methods.empty()
                                  ? earlier.methods.empty()
                                  : std::all_of(later.methods.begin(), later.methods.end(),
                                                [&](const std::string& m) { return takes(earlier.methods, m); });
    if (takes_every_method) return j;
  }
  return std::nullopt;
}

// shadowing() (the trie --check runs) names the same route as the pairwise definition for every
// route, over a table mixing literals (one spelled with an encoding), {params}, '*', a trailing
// empty segment and method lists.
TEST(RouterTest, ShadowingAgreesWithThePairwiseDefinitionForEveryRoute) {
  const std::vector<std::string> paths = {"/",         "/*",       "/a",        "/a/*",      "/a/{x}",
                                          "/a/b",      "/a/{x}/c", "/{x}",      "/{x}/b",    "/{x}/*",
                                          "/a/",       "/a/%62",   "/{x}/{y}",  "/a/b/*",    "/b/{x}"};
  const std::vector<std::vector<std::string>> methods = {{}, {"GET"}, {"PUT"}, {"GET", "PUT"}, {"HEAD"}};
  std::vector<RouteConfig> routes;
  // A fixed pseudo-random order (linear congruential), so every pair of kinds meets both ways.
  std::uint32_t state = 12345;
  for (int i = 0; i < 400; ++i) {
    state = state * 1103515245u + 12345u;
    const std::string& path = paths[(state >> 8) % paths.size()];
    const auto& method_list = methods[(state >> 20) % methods.size()];
    routes.push_back(route("r" + std::to_string(i), path, method_list));
  }
  Router router(routes);
  std::vector<std::optional<std::size_t>> all = router.shadowing();
  ASSERT_EQ(all.size(), routes.size());
  std::size_t shadowed = 0;
  for (std::size_t i = 0; i < routes.size(); ++i) {
    EXPECT_EQ(all[i], reference_shadowed_by(routes, i)) << routes[i].path;
    if (all[i]) ++shadowed;
  }
  // The table exercises both answers past its first route (which nothing can shadow).
  EXPECT_GT(shadowed, 0u);
  EXPECT_LT(shadowed, routes.size() - 1);
}

TEST(RouterTest, CaseInsensitiveRouterMatchesLowerCasedPathsAndKeepsParamNames) {
  Router router({route("counters", "/Counters/{Id}")}, true);
  RouteMatch m;
  ASSERT_EQ(router.match("GET", "/counters/abc", m), Router::Outcome::Matched);
  ASSERT_EQ(m.params.size(), 1u);
  EXPECT_EQ(m.params[0].name, "Id");
  EXPECT_EQ(m.params[0].value, "abc");
  Router sensitive({route("counters", "/Counters/{Id}")});
  EXPECT_EQ(sensitive.match("GET", "/counters/abc", m), Router::Outcome::NotFound);
}

// Requests are routed in normal form (proxy/http/path_normalization.h); patterns are read in it.
TEST(PathPatternTest, LiteralsAreTakenInNormalForm) {
  EXPECT_TRUE(matches("/%7euser/{x}", "/~user/1"));
  EXPECT_TRUE(matches("/a%2fb", "/a%2Fb"));
  EXPECT_TRUE(matches("/caf\xc3\xa9/%41", "/caf%C3%A9/A"));
  EXPECT_TRUE(matches("/a/", "/a/"));  // a trailing '/' survives normalisation
  EXPECT_TRUE(matches("/", "/"));
}

TEST(PathPatternTest, SegmentsNoNormalisedPathHasAreRefused) {
  for (const char* pattern : {"/a//b", "//a", "/a/./b", "/a/../b", "/a/%2E", "/a/%2e%2e/*", "/a%zz", "/a%00"}) {
    EXPECT_THROW(PathPattern{pattern}, std::invalid_argument) << pattern;
  }
  try {
    PathPattern pattern("/a//b");
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("could never match"), std::string::npos) << e.what();
  }
}

// Under case_insensitive_paths a request path is lower-cased by lower_case_path, which keeps the
// (uppercase) hex of its percent-encodings; a pattern's literals must be lowered the same way.
TEST(RouterTest, CaseInsensitiveRouterKeepsTheHexOfEncodingsInLiterals) {
  Router router({route("files", "/Files/A%2FB/{Name}")}, true);
  std::string lowered;
  lower_case_path("/FILES/a%2Fb/X", lowered);
  RouteMatch m;
  ASSERT_EQ(router.match("GET", lowered, m), Router::Outcome::Matched) << lowered;
  ASSERT_EQ(m.params.size(), 1u);
  EXPECT_EQ(m.params[0].value, "x");
}

TEST(RouterTest, EmptyRouterFindsNothing) {
  Router router({});
  RouteMatch m;
  EXPECT_EQ(router.match("GET", "/", m), Router::Outcome::NotFound);
  EXPECT_TRUE(router.shadowing().empty());
}

}  // namespace
}  // namespace arbiter
