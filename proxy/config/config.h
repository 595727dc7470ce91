#pragma once
// The configuration file: parsed and validated once into an immutable Config.
// Every error names the file, line, column and key, so a bad edit is refused with a pointer
// to the line that needs fixing.

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "policies/config_reader.h"
#include "policies/policy_kind.h"
#include "policies/policy_registry.h"
#include "proxy/config/control_config.h"
#include "proxy/http/address.h"
#include "proxy/observe/log.h"

namespace arbiter {

struct SocketAddress {
  std::string host;    // numeric IPv4 or IPv6 (without brackets) or "localhost"
  std::uint16_t port = 0;  // 0 only for listen addresses: the kernel picks one
  std::string text() const;  // "127.0.0.1:8080", "[::1]:8080"
};


struct ServerConfig {
  std::vector<SocketAddress> listen;          // "listen": a string or an array of strings
  unsigned workers = 0;                        // 0 = one per core (resolved by the loader)
  Duration header_timeout = std::chrono::seconds(10);
  Duration body_timeout = std::chrono::seconds(60);  // longest pause inside a request body
  Duration body_deadline = std::chrono::minutes(5);  // longest time to receive a whole request body
  Duration idle_timeout = std::chrono::seconds(60);
  Duration drain_timeout = std::chrono::seconds(10);  // graceful shutdown bound
  std::size_t max_header_bytes = 65536;
  std::uint64_t max_body_bytes = 16ull << 20;
  std::size_t max_connections = 10000;
  std::vector<Cidr> trusted_proxies;
  // The upstream gets the request target as the client sent it, instead of its normal path
  // (proxy/http/path_normalization.h) and the query as sent.
  bool forward_raw_path = false;
  // Routes and resource keys see the path lower-cased (for backends that ignore case).
  bool case_insensitive_paths = false;
  // Arbiter's own endpoints on the client listeners (proxy/control/control_endpoints.h): the
  // normal form of a literal path, without a trailing '/', never "/".
  std::string control_prefix = "/_arbiter";
};

struct AdminConfig {
  std::optional<SocketAddress> listen;  // absent: no admin listener
};

struct LogConfig {
  bool access = true;  // "access": "stdout" (default) or a file path; false: "off"
  std::string access_path;  // "access" = a path (it has a '/'): appended to that file; empty: stdout
  AccessLogFormat format = AccessLogFormat::Json;  // "format": "json" (default) or "combined"
};

struct UpstreamConfig {
  std::string name;
  std::vector<SocketAddress> servers;
  Duration connect_timeout = std::chrono::seconds(2);
  Duration response_timeout = std::chrono::seconds(30);
  Duration fail_timeout = std::chrono::seconds(10);  // how long a failed server is skipped
  unsigned keepalive = 64;
  int line = 0;  // where [upstream.NAME] is, for messages
};

struct RouteConfig {
  std::string name;
  std::string path;                  // pattern, see proxy/exchange/router.h
  std::vector<std::string> methods;  // upper-case; empty = any method
  std::string upstream;              // a key of Config::upstreams
  // One entry a policy kind the route uses ([route.etag], [[route.limit]], ...), in the order
  // of Config::policy_kinds; settings_of<Settings>(policies) finds one by its settings type.
  PolicyConfigs policies;
  // "websocket": requests asking to switch protocols (Connection: upgrade + Upgrade) are
  // forwarded as such and a 101 becomes a tunnel; false: Upgrade is removed (plain HTTP).
  bool websocket = true;
  // "tunnel_idle_timeout": a tunnel with no byte either way for this long is closed.
  Duration tunnel_idle_timeout = std::chrono::hours(1);
  int line = 0;
  int column = 0;
};

struct Config {
  std::string file;  // the path it was loaded from
  ServerConfig server;
  AdminConfig admin;
  LogConfig log;
  ControlConfig control;
  std::vector<UpstreamConfig> upstreams;  // in file order
  std::vector<RouteConfig> routes;         // in file order: first match wins
  // The kinds it was read with (those its routes' policies belong to among them), in
  // registration order: the order of their /config JSON and /metrics families.
  PolicyRegistry policy_kinds;

  const UpstreamConfig* find_upstream(std::string_view name) const;
};

// Parses and validates; throws ConfigError listing every problem found (not just the first).
// A [[route]] may use the policy kinds of `kinds` (each reads its own keys of the route).
Config load_config_file(const std::string& path, const PolicyRegistry& kinds = product_policy_registry());
Config parse_config(std::string_view toml_text, const std::string& file_name,
                    const PolicyRegistry& kinds = product_policy_registry());

// "127.0.0.1:8080", "[::1]:8080", "localhost:80"; nullopt if malformed.
std::optional<SocketAddress> parse_socket_address(std::string_view text);

// A plain-HTTP URL as [[control.webhook]] url takes it: "http://127.0.0.1:9000/hooks".
struct HttpUrl {
  SocketAddress address;  // host and port, as parse_socket_address reads them (the port is required)
  std::string target;     // the path and query, "/" when the URL has none
};
// nullopt unless it is http:// (either case), HOST:PORT, then nothing or a target starting with
// '/' (no fragment, no user info, no spaces or control characters).
std::optional<HttpUrl> parse_http_url(std::string_view text);

// The table `arbiter --check` prints: one row per route with name, path, methods,
// upstream (and its servers) and policies.
std::string format_route_table(const Config& config);

}  // namespace arbiter
