#include "proxy/http/query.h"

#include <gtest/gtest.h>

#include <string>

namespace arbiter {

TEST(QueryParamTest, FindsAndDecodesTheFirstPair) {
  EXPECT_EQ(query_param("resource=/items/1", "resource"), "/items/1");
  EXPECT_EQ(query_param("a=1&resource=%2Fitems%2f1%20x&resource=second", "resource"), "/items/1 x");
  EXPECT_EQ(query_param("a=1+2", "a"), "1+2");  // '+' stays
  EXPECT_EQ(query_param("a=%3D%26", "a"), "=&");
  EXPECT_EQ(query_param("a=b=c", "a"), "b=c");
  EXPECT_EQ(query_param("&&a=1&", "a"), "1");
}

TEST(QueryParamTest, AbsentAndBareNames) {
  EXPECT_FALSE(query_param("", "a"));
  EXPECT_FALSE(query_param("b=1&c=2", "a"));
  EXPECT_FALSE(query_param("ab=1", "a"));
  EXPECT_FALSE(query_param("A=1", "a"));  // names are case-sensitive
  EXPECT_EQ(query_param("a", "a"), "");
  EXPECT_EQ(query_param("b=1&a", "a"), "");
  EXPECT_EQ(query_param("a=", "a"), "");
}

TEST(QueryParamTest, MalformedEscapesAndNulAreRefused) {
  EXPECT_FALSE(query_param("a=%", "a"));
  EXPECT_FALSE(query_param("a=%2", "a"));
  EXPECT_FALSE(query_param("a=x%2", "a"));
  EXPECT_FALSE(query_param("a=%zz", "a"));
  EXPECT_FALSE(query_param("a=%g0", "a"));
  EXPECT_FALSE(query_param("a=%00", "a"));
  EXPECT_FALSE(query_param("a=x%00y", "a"));
  EXPECT_EQ(query_param("a=%20", "a"), " ");  // an escape at the very end
  EXPECT_EQ(query_param("a=%41&b=%", "a"), "A");  // only the asked pair is read
}

}  // namespace arbiter
