#include "proxy/http/path_normalization.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>

namespace arbiter {
namespace {

std::string normal(std::string_view path) {
  std::string out, why;
  EXPECT_TRUE(normalize_path(path, out, why)) << path << ": " << why;
  return out;
}

std::string refusal(std::string_view path) {
  std::string out, why;
  EXPECT_FALSE(normalize_path(path, out, why)) << path << " became " << out;
  return why;
}

TEST(PathNormalizationTest, TheIssuesAliasesAllBecomeOnePath) {
  for (const char* alias : {"/static/a", "/%73tatic/a", "/x/../static/a", "//static/a", "/./static/a",
                            "/x/%2e%2e/static/a", "/x/%2E%2E/static/a", "/%2e/static/a", "///static//a"}) {
    EXPECT_EQ(normal(alias), "/static/a") << alias;
  }
}

TEST(PathNormalizationTest, DecodesUnreservedAndUppercasesTheRest) {
  EXPECT_EQ(normal("/counters/%31"), "/counters/1");
  EXPECT_EQ(normal("/%41%7a%2D%5f%7E%2e"), "/Az-_~.");
  EXPECT_EQ(normal("/a%2fb"), "/a%2Fb");  // '/' as data stays encoded: never a separator
  EXPECT_EQ(normal("/a%3Fb%23c%25d"), "/a%3Fb%23c%25d");
  EXPECT_EQ(normal("/caf%c3%a9"), "/caf%C3%A9");
  EXPECT_EQ(normal("/a%20b"), "/a%20b");
}

TEST(PathNormalizationTest, EncodesOctetsThatMayNotAppearBare) {
  EXPECT_EQ(normal("/caf\xc3\xa9"), "/caf%C3%A9");  // the same resource as /caf%c3%a9
  EXPECT_EQ(normal("/a\"b<c>d\\e^f`g{h|i}"), "/a%22b%3Cc%3Ed%5Ce%5Ef%60g%7Bh%7Ci%7D");
  EXPECT_EQ(normal("/a:b@c!$&'()*+,;="), "/a:b@c!$&'()*+,;=");  // pchar stays bare
}

TEST(PathNormalizationTest, RemovesDotSegmentsAndMergesSlashes) {
  const std::pair<const char*, const char*> cases[] = {
      {"/", "/"},           {"//", "/"},          {"/a", "/a"},           {"/a/", "/a/"},
      {"/a//", "/a/"},      {"/a/.", "/a/"},      {"/a/..", "/"},         {"/a/b/..", "/a/"},
      {"/a/b/../c", "/a/c"}, {"/a/./b/./", "/a/b/"}, {"/a/b/../../c", "/c"}, {"/a/.../b", "/a/.../b"},
      {"/a/..b/c", "/a/..b/c"}, {"/.a", "/.a"},  {"/a/%2E", "/a/"},      {"/a//../b", "/b"},
  };
  for (const auto& [in, out] : cases) EXPECT_EQ(normal(in), out) << in;
}

TEST(PathNormalizationTest, RefusesWhatCannotBeNormalised) {
  EXPECT_NE(refusal("/..").find("above the root"), std::string::npos);
  EXPECT_NE(refusal("/a/../..").find("above the root"), std::string::npos);
  EXPECT_NE(refusal("/%2e%2e/a").find("above the root"), std::string::npos);
  EXPECT_NE(refusal("/a%00b").find("%00"), std::string::npos);
  EXPECT_NE(refusal("/a%").find("two hex digits"), std::string::npos);
  EXPECT_NE(refusal("/a%4").find("two hex digits"), std::string::npos);
  EXPECT_NE(refusal("/a%zz").find("two hex digits"), std::string::npos);
}

TEST(PathNormalizationTest, NormalFormIsAFixedPoint) {
  for (const char* path : {"/%73tatic/a", "/a%2fb/../c", "/caf%c3%a9/", "//x/./y", "/a%20b"}) {
    std::string once = normal(path);
    EXPECT_EQ(normal(once), once) << path;
  }
}

TEST(PathNormalizationTest, LowerCasingKeepsTheHexOfEncodings) {
  std::string out;
  lower_case_path("/Counters/AB%2Fcd%C3%A9", out);
  EXPECT_EQ(out, "/counters/ab%2Fcd%C3%A9");
}

TEST(PathNormalizationTest, NormalizeTargetKeepsTheQueryAsSentAndLowersOnlyWhenAsked) {
  NormalTarget normal;
  std::string why;
  ASSERT_TRUE(normalize_target("/x/../%41ccounts/%37?Q=%2f&p=/../x", false, normal, why)) << why;
  EXPECT_EQ(normal.target, "/Accounts/7?Q=%2f&p=/../x");
  EXPECT_EQ(normal.path(), "/Accounts/7");
  EXPECT_EQ(normal.query(), "Q=%2f&p=/../x");
  EXPECT_EQ(normal.routed(), "/Accounts/7");
  EXPECT_TRUE(normal.routed_path.empty());
  ASSERT_TRUE(normalize_target("/A%2fB?", true, normal, why)) << why;  // reused: nothing left over
  EXPECT_EQ(normal.target, "/A%2FB?");
  EXPECT_EQ(normal.query(), "");
  EXPECT_EQ(normal.routed(), "/a%2Fb");
  ASSERT_TRUE(normalize_target("/b", false, normal, why)) << why;
  EXPECT_EQ(normal.routed(), "/b");  // the last request's lower-cased path is not kept
  EXPECT_FALSE(normalize_target("/../a?b", false, normal, why));
  EXPECT_NE(why.find("above the root"), std::string::npos);
}

}  // namespace
}  // namespace arbiter
