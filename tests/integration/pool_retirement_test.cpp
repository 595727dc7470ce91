// Issue #12 item 19: an upstream pool that a reload replaced is freed once no connection uses
// it, instead of being kept for the life of the process. Watched through the
// arbiter_retired_upstream_pools gauge and Arbiter's descriptors.

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>

#include "tests/support/proxy_fixture.h"

namespace {

using namespace harness;

class PoolRetirementTest : public ProxyFixture {
 protected:
  // An edit of the upstream's settings: every reload gives each worker a new pool.
  std::string config_with_keepalive(int keepalive) {
    return make_config(backend_.port(), ConfigOptions{.upstream = "keepalive = " + std::to_string(keepalive)});
  }

  void reload_with(const std::string& config_text) {
    LinePosition before = arbiter_->process().position();
    arbiter_->config_file().replace(config_text);
    ASSERT_TRUE(arbiter_->process().signal(SIGHUP));
    ASSERT_TRUE(arbiter_->process().wait_for_line(std::regex("arbiter: reloaded "), 10s, before))
        << arbiter_->process().output_summary();
  }

  double retired_pools() {
    HttpClient client(*arbiter_->admin_port());
    HttpResponse response = require(client.request("GET", "/metrics"), client);
    std::smatch match;
    static const std::regex kLine("(^|\n)arbiter_retired_upstream_pools ([0-9.e+]+)\n");
    if (!std::regex_search(response.body, match, kLine)) return -1;
    return std::stod(match[2]);
  }

  // Polls (bounded) until the gauge reads `wanted`; returns the last value read.
  double wait_for_retired_pools(double wanted) {
    auto deadline = std::chrono::steady_clock::now() + 15s;
    double value = retired_pools();
    while (value != wanted && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(20ms);
      value = retired_pools();
    }
    return value;
  }

  std::size_t open_descriptors() {
    std::size_t count = 0;
    for ([[maybe_unused]] const auto& entry :
         std::filesystem::directory_iterator("/proc/" + std::to_string(arbiter_->process().pid()) + "/fd")) {
      ++count;
    }
    return count;
  }
};

TEST_F(PoolRetirementTest, ManyReloadsLeaveNoRetiredPoolBehind) {
  arbiter_ = std::make_unique<ArbiterProcess>(config_with_keepalive(1));
  // Keep-alive client connections across the reloads: each request leaves an idle upstream
  // connection in the pool of the moment, which the next reload retires.
  HttpClient first(arbiter_->port());
  HttpClient second(arbiter_->port());
  EXPECT_EQ(require(first.request("GET", "/items/1"), first).status, 200);
  EXPECT_EQ(require(second.request("GET", "/items/1"), second).status, 200);
  std::size_t descriptors_before = open_descriptors();
  for (int i = 2; i <= 40; ++i) {
    reload_with(config_with_keepalive(i));
    EXPECT_EQ(require(first.request("GET", "/items/1"), first).status, 200) << "after reload " << i;
    EXPECT_EQ(require(second.request("GET", "/items/1"), second).status, 200) << "after reload " << i;
  }
  EXPECT_EQ(wait_for_retired_pools(0), 0) << "retired pools are never freed";
  // Idle upstream connections of the current pools, at most two a worker, besides the start's.
  EXPECT_LE(open_descriptors(), descriptors_before + 4);
}

TEST_F(PoolRetirementTest, ARetiredPoolLivesUntilItsLastRequestEnds) {
  arbiter_ = std::make_unique<ArbiterProcess>(config_with_keepalive(1));
  HttpClient slow(arbiter_->port());
  ASSERT_TRUE(slow.send_raw(format_request("GET", "/_test/delay?ms=3000", arbiter_->port())));
  // The request is at the backend once the backend has logged it.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (backend_log().empty() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  ASSERT_FALSE(backend_log().empty());
  reload_with(config_with_keepalive(2));
  // The worker with the request in flight keeps its old pool (the other freed its own at once).
  // Workers take a reload up on their own loops: poll until both have.
  EXPECT_EQ(wait_for_retired_pools(1), 1);
  auto response = slow.read_response();
  ASSERT_TRUE(response) << slow.last_error();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(wait_for_retired_pools(0), 0);
  // New requests use the new pool.
  EXPECT_EQ(send("GET", "/items/1").status, 200);
}

}  // namespace
