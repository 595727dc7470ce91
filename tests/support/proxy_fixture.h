#pragma once
// A test fixture with the legacy API running and arbiter started in front of it with a
// generated configuration (listening on kernel-chosen ports).

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/harness.h"

namespace harness {

struct ConfigOptions {
  std::string server;    // extra [server] keys
  std::string upstream;  // extra [upstream.legacy] keys
  std::string servers;   // replaces the upstream's servers list
  std::string leading_routes;  // routes before the defaults (first match wins)
  std::string routes;    // extra routes, after the defaults
  int workers = 2;
};

// Routes: options.leading_routes, then "test-hooks" /_test/*, "items" /items/{id},
// "items-collection" /items, then options.routes.
inline std::string make_config(std::uint16_t upstream_port, const ConfigOptions& options = {}) {
  std::string servers =
      options.servers.empty() ? "[\"127.0.0.1:" + std::to_string(upstream_port) + "\"]" : options.servers;
  return "[server]\nlisten = \"127.0.0.1:0\"\nworkers = " + std::to_string(options.workers) + "\n" +
         options.server + "\n[admin]\nlisten = \"127.0.0.1:0\"\n" + "\n[upstream.legacy]\nservers = " + servers +
         "\n" + options.upstream + "\n" + options.leading_routes +
         "\n[[route]]\nname = \"test-hooks\"\npath = \"/_test/*\"\nupstream = \"legacy\"\n"
         "\n[[route]]\nname = \"items\"\npath = \"/items/{id}\"\nmethods = [\"GET\", \"PUT\", \"PATCH\", \"DELETE\"]\n"
         "upstream = \"legacy\"\n"
         "\n[[route]]\nname = \"items-collection\"\npath = \"/items\"\nmethods = [\"GET\", \"POST\"]\n"
         "upstream = \"legacy\"\n" +
         options.routes;
}

class ProxyFixture : public ::testing::Test {
 protected:
  void start(const ConfigOptions& options = {}) {
    arbiter_ = std::make_unique<ArbiterProcess>(make_config(backend_.port(), options));
  }

  // One request on a new connection to arbiter.
  HttpResponse send(std::string_view method, std::string_view target, std::string_view body = {},
                    const HeaderPairs& headers = {}) {
    HttpClient client(arbiter_->port());
    return require(client.request(method, target, headers, body), client);
  }
  // One request straight to the backend, behind arbiter's back.
  HttpResponse send_to_backend(std::string_view method, std::string_view target, std::string_view body = {}) {
    HttpClient client(backend_.port());
    return require(client.request(method, target, {}, body), client);
  }

  // What the backend has received since the last clear_backend_log().
  nlohmann::json backend_log() { return nlohmann::json::parse(send_to_backend("GET", "/_test/log").body); }
  void clear_backend_log() { ASSERT_EQ(send_to_backend("DELETE", "/_test/log").status, 204); }

  LegacyApi backend_;
  std::unique_ptr<ArbiterProcess> arbiter_;
};

}  // namespace harness
