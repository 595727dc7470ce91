#pragma once
// A test with Arbiter in front of json-server (tests/support/json_server.h): the two processes,
// and requests to either. Header-only: the integration tests that use it include it.

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "tests/support/harness.h"
#include "tests/support/json_server.h"

namespace harness {

class JsonServerFixture : public ::testing::Test {
 protected:
  // json-server holding `database`, then Arbiter with `config` (the TOML of everything else)
  // after an [upstream.json_server] table naming it.
  void start_with(const nlohmann::json& database, const std::string& config) {
    backend_ = std::make_unique<JsonServer>(database);
    arbiter_ = std::make_unique<ArbiterProcess>(config + "\n[upstream.json_server]\nservers = [\"127.0.0.1:" +
                                                std::to_string(backend_->port()) + "\"]\n");
  }

  // Through Arbiter; a body goes as application/json unless `headers` name a Content-Type.
  HttpResponse send(std::string_view method, std::string_view target, std::string_view body = {},
                    HeaderPairs headers = {}) {
    bool typed = false;
    for (const auto& [field, value] : headers) typed = typed || field == "Content-Type";
    if (!body.empty() && !typed) headers.emplace_back("Content-Type", "application/json");
    HttpClient client(arbiter_->port());
    return require(client.request(method, target, headers, body), client);
  }
  // To json-server directly.
  HttpResponse send_to_backend(std::string_view method, std::string_view target, std::string_view body = {}) {
    HeaderPairs headers;
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    HttpClient client(backend_->port());
    return require(client.request(method, target, headers, body), client);
  }
  // The ETag of a 200 GET through Arbiter ("" when there is none).
  std::string etag_of(std::string_view target) {
    HttpResponse response = send("GET", target);
    EXPECT_EQ(response.status, 200) << response.body;
    return response.header("ETag").value_or("");
  }

  std::unique_ptr<JsonServer> backend_;  // destroyed last: Arbiter stops first
  std::unique_ptr<ArbiterProcess> arbiter_;
};

}  // namespace harness
