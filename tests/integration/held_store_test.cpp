// A policy parked on a store that answers later, through the real binary: the test-only kind
// [route.held] (tests/support/control_server/held_kind.h, built into arbiter-test-handlers,
// never into arbiter) parks its request in the request, response and end phases on the
// HeldStore, which answers a call only when the test releases it. While it waits, the one
// worker serves every other request; released, the exchange resumes where it parked. Paced by
// releases, not by time: nothing here depends on the machine's speed.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/proxy_fixture.h"
#include "tests/support/websocket.h"

namespace {

using harness::ConfigOptions;
using harness::HttpClient;
using harness::HttpResponse;
using nlohmann::json;
using namespace std::chrono_literals;

const std::string kHeldRoute = "\n[[route]]\nname = \"held\"\npath = \"/held/{id}\"\nupstream = \"legacy\"\n[route.held]\n";

class HeldStoreTest : public harness::ProxyFixture {
 protected:
  void start_held(const std::string& held_keys = "") {
    arbiter_ = std::make_unique<harness::ArbiterProcess>(
        harness::make_config(backend_.port(), ConfigOptions{.leading_routes = kHeldRoute + held_keys, .workers = 1}),
        std::vector<std::string>{}, 10s, harness::ChildEnvironment{}, harness::arbiter_test_handlers_binary());
  }
  json control(std::string_view method, std::string_view target) {
    HttpResponse response = send(method, std::string("/_arbiter/test/") + std::string(target));
    EXPECT_EQ(response.status, 200) << response.body;
    return json::parse(response.body);
  }
  // Waits until `count` calls are held on the worker; false if they never are.
  bool held(std::size_t count) {
    return harness::eventually([&] { return control("GET", "held")["held"] == count; });
  }
  // Other requests, each on a connection of its own, all answered while the held one waits.
  void serve_others(const std::string& when) {
    for (int i = 0; i < 5; ++i) {
      int put = send("PUT", "/items/" + std::to_string(i), R"({"n":)" + std::to_string(i) + "}").status;
      EXPECT_TRUE(put == 200 || put == 201) << when << ": " << put;
      EXPECT_EQ(send("GET", "/items/" + std::to_string(i)).status, 200) << when;
    }
  }
  // The held policy's calls of one phase and outcome, from /metrics.
  double calls(std::string_view phase, std::string_view outcome) {
    HttpClient admin(*arbiter_->admin_port());
    HttpResponse metrics = harness::require(admin.request("GET", "/metrics"), admin);
    std::string sample = "arbiter_held_calls_total{route=\"held\",phase=\"" + std::string(phase) + "\",outcome=\"" +
                         std::string(outcome) + "\"} ";
    std::size_t at = metrics.body.find(sample);
    if (at == std::string::npos) return -1;
    return std::stod(metrics.body.substr(at + sample.size()));
  }
};

TEST_F(HeldStoreTest, ParkedOnTheStoreInEveryPhaseWhileTheWorkerServesOthers) {
  start_held();
  harness::BlockingSocket parked(harness::connect_loopback(arbiter_->port()));
  // Two requests pipelined on one connection: the second waits for the first's end phase.
  ASSERT_TRUE(parked.write_all("GET /held/1 HTTP/1.1\r\nHost: t\r\n\r\nGET /items/0 HTTP/1.1\r\nHost: t\r\n\r\n"));

  ASSERT_TRUE(held(1)) << "the request phase never called the store";
  serve_others("request phase parked");
  EXPECT_FALSE(parked.readable(0ms)) << "answered before its request phase's call was released";
  EXPECT_EQ(calls("request", "answered"), 0);

  EXPECT_EQ(control("POST", "release")["released"], 1);
  ASSERT_TRUE(held(1)) << "the response phase never called the store";
  serve_others("response phase parked");
  EXPECT_FALSE(parked.readable(0ms)) << "the response left before its response phase's call was released";
  EXPECT_EQ(calls("request", "answered"), 1);

  EXPECT_EQ(control("POST", "release")["released"], 1);
  auto head = parked.read_head(10s);
  ASSERT_TRUE(head) << "no answer after the response phase was released";
  EXPECT_EQ(head->rfind("HTTP/1.1 404 ", 0), 0u) << *head;  // the backend has no /held/1
  EXPECT_NE(head->find("\r\nHeld-Phases: request, response\r\n"), std::string::npos) << *head;

  // The end phase parks: the pipelined request is not started until it is released.
  ASSERT_TRUE(held(1)) << "the end phase never called the store";
  serve_others("end phase parked");
  EXPECT_EQ(calls("response", "answered"), 1);
  EXPECT_EQ(calls("end", "answered"), 0);

  EXPECT_EQ(control("POST", "release")["released"], 1);
  std::string rest;
  // The rest of the first answer (its body) and the whole second one arrive; the second is a 200.
  ASSERT_TRUE(harness::eventually([&] {
    std::string more;
    while (parked.readable(0ms) && parked.read_exact(1, more, 1s)) rest += more, more.clear();
    return rest.find("HTTP/1.1 200 ") != std::string::npos && rest.find(R"("n":0)") != std::string::npos;
  })) << rest;
  EXPECT_EQ(calls("end", "answered"), 1);
  for (std::string_view phase : {"request", "response", "end"}) EXPECT_EQ(calls(phase, "gave_up"), 0) << phase;
  EXPECT_EQ(control("GET", "held")["held"], 0);
}

TEST_F(HeldStoreTest, AClientThatLeavesWhileParkedCancelsItsStoreCall) {
  start_held("phases = [\"request\"]\n");
  {
    harness::BlockingSocket parked(harness::connect_loopback(arbiter_->port()));
    ASSERT_TRUE(parked.write_all("GET /held/1 HTTP/1.1\r\nHost: t\r\n\r\n"));
    ASSERT_TRUE(held(1));
  }  // closed while parked
  // The exchange ends with the connection; its state, and the call in it, go: nothing is held.
  EXPECT_TRUE(held(0)) << "the store call outlived its exchange";
  EXPECT_EQ(control("POST", "release")["released"], 0);
  serve_others("after the parked client left");
  EXPECT_EQ(calls("request", "answered"), 0);
  EXPECT_EQ(calls("request", "gave_up"), 0);
}

TEST_F(HeldStoreTest, OnlyTheConfiguredPhasesParkAndTheKindIsReadLikeTheProductsOwn) {
  start_held("phases = [\"response\"]\n");
  HttpClient client(arbiter_->port(), 60s);
  ASSERT_TRUE(client.send_raw("GET /held/2 HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(held(1));  // the response phase: the request phase went straight on
  EXPECT_EQ(calls("request", "answered"), 0);
  EXPECT_EQ(control("POST", "release")["released"], 1);
  HttpResponse answer = harness::require(client.read_response(), client);
  EXPECT_EQ(answer.header("Held-Phases").value_or("-"), "response");
  EXPECT_TRUE(held(0));

  auto file = harness::write_temp_file(
      harness::make_config(backend_.port(), ConfigOptions{.leading_routes = kHeldRoute + "phases = [\"later\"]\n"}),
      ".toml");
  auto checked = harness::run_process(harness::arbiter_test_handlers_binary(), {"-c", file.path()}, 10s);
  EXPECT_EQ(checked.exit_code, std::optional<int>(1));
  EXPECT_NE(checked.stderr_text.find("route[0].held.phases[0]: route 'held': expected \"request\", \"response\" or \"end\""), std::string::npos) << checked.stderr_text;
}

}  // namespace
