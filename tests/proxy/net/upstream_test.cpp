#include "proxy/net/upstream.h"

#include <gtest/gtest.h>

#include <string>

namespace arbiter {
namespace {

TEST(DescribeUpstreamFailure, NamesTheSystemError) {
  std::string refused = describe(UpstreamFailure::ConnectFailed, UV_ENETUNREACH);
  EXPECT_EQ(refused.rfind("could not connect to the upstream: ", 0), 0u) << refused;
  EXPECT_NE(refused.find("ENETUNREACH, "), std::string::npos) << refused;
  EXPECT_EQ(refused.find("timed out"), std::string::npos) << refused;
  EXPECT_EQ(describe(UpstreamFailure::ConnectTimeout), "connecting to the upstream timed out");
  EXPECT_NE(describe(UpstreamFailure::ClosedBeforeResponse, UV_ECONNRESET).find(": ECONNRESET, "), std::string::npos);
}

}  // namespace
}  // namespace arbiter
