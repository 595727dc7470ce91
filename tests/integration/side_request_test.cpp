// Side requests through the real binary: the ETag policy's verify read (verify = "upstream") is
// a side request of the exchange, and a client that goes away while it is outstanding cancels
// it: its upstream connection is closed, never pooled with an answer still to come, and the
// write turn it held is free for the next writer at once.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/proxy_fixture.h"

namespace {

using harness::ConfigOptions;
using harness::eventually;
using harness::HttpClient;
using harness::HttpResponse;
using nlohmann::json;
using namespace std::chrono_literals;

class SideRequestTest : public harness::ProxyFixture {
 protected:
  void start_with_etag() {
    start(ConfigOptions{.routes = "\n[[route]]\nname = \"accounts\"\npath = \"/accounts/{id}\"\nupstream = \"legacy\"\n"
                                  "[route.etag]\nverify = \"upstream\"\n",
                        .workers = 1});
  }

  // The backend connection of the last logged request `method target`; 0 if none.
  std::uint64_t connection_of(std::string_view method, std::string_view target) {
    std::uint64_t connection = 0;
    for (const auto& entry : backend_log()) {
      if (entry["method"] == method && entry["target"] == target) connection = entry["connection"];
    }
    return connection;
  }

  bool backend_connection_open(std::uint64_t connection) {
    const json counts = json::parse(send_to_backend("GET", "/_test/connections").body);
    for (const auto& id : counts["open_ids"]) {
      if (id == connection) return true;
    }
    return false;
  }
};

TEST_F(SideRequestTest, ClientGoneDuringTheVerifyReadCancelsItAndFreesTheTurn) {
  start_with_etag();
  HttpResponse read = send("GET", "/accounts/1");
  ASSERT_EQ(read.status, 200);
  const std::string etag = read.header("ETag").value_or("");
  ASSERT_FALSE(etag.empty());

  // The next GET of the resource (the verify read) gets no answer at all.
  ASSERT_EQ(send_to_backend("POST", "/_test/fault?path=/accounts/1&method=GET&action=hang").status, 204);
  clear_backend_log();
  std::uint64_t verify = 0;
  {
    HttpClient writer(arbiter_->port());
    ASSERT_TRUE(writer.send_raw(harness::format_request("PUT", "/accounts/1", arbiter_->port(),
                                                        {{"If-Match", etag}}, R"({"balance":1})")));
    ASSERT_TRUE(eventually([&] { return (verify = connection_of("GET", "/accounts/1")) != 0; }))
        << "the verify read never reached the backend";
  }  // the writer goes away with its read outstanding

  EXPECT_TRUE(eventually([&] { return !backend_connection_open(verify); }))
      << "the cancelled read's connection was kept open";
  // The turn is free: the next write with the same tag is read, checked and forwarded at once
  // (well within the backend's 30 s response_timeout that a leaked turn would wait for).
  HttpClient next(arbiter_->port(), 10s);
  auto written = next.request("PUT", "/accounts/1", {{"If-Match", etag}}, R"({"balance":2})");
  ASSERT_TRUE(written) << next.last_error();
  EXPECT_EQ(written->status, 200);
  EXPECT_EQ(json::parse(send_to_backend("GET", "/accounts/1").body)["balance"], 2);
}

}  // namespace
