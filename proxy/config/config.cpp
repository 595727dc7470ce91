#include "proxy/config/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <thread>
#include <unordered_map>
#include <utility>

#include <toml++/toml.h>

#include "proxy/exchange/router.h"
#include "proxy/http/address.h"
#include "proxy/http/hex.h"
#include "proxy/http/path_normalization.h"

namespace arbiter {

namespace {

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

std::optional<std::uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned port = 0;
  for (char c : text) {
    if (!is_digit(c)) return std::nullopt;
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(port);
}


}  // namespace

std::optional<SocketAddress> parse_socket_address(std::string_view text) {
  std::string_view host, port_text;
  if (text.starts_with('[')) {
    std::size_t close = text.find(']');
    if (close == std::string_view::npos || text.substr(close + 1, 1) != ":") return std::nullopt;
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
    in6_addr ignored;
    if (!parse_ip_address(host, AF_INET6, &ignored)) return std::nullopt;
  } else {
    // An IPv6 address needs brackets, or its last group could not be told from the port.
    std::size_t colon = text.find(':');
    if (colon == std::string_view::npos || text.find(':', colon + 1) != std::string_view::npos) {
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    in_addr ignored;
    if (host != "localhost" && !parse_ip_address(host, AF_INET, &ignored)) return std::nullopt;
  }
  auto port = parse_port(port_text);
  if (!port) return std::nullopt;
  return SocketAddress{std::string(host), *port};
}

std::optional<HttpUrl> parse_http_url(std::string_view text) {
  constexpr std::string_view kScheme = "http://";
  if (text.size() < kScheme.size() || !iequals(text.substr(0, kScheme.size()), kScheme)) return std::nullopt;
  text.remove_prefix(kScheme.size());
  std::size_t slash = std::min(text.find('/'), text.size());
  auto address = parse_socket_address(text.substr(0, slash));
  std::string_view target = text.substr(slash);
  if (!address || address->port == 0) return std::nullopt;
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f || c == '#') return std::nullopt;
  }
  return HttpUrl{std::move(*address), target.empty() ? "/" : std::string(target)};
}

std::string SocketAddress::text() const {
  std::string port_text = std::to_string(port);
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + port_text;
  return host + ":" + port_text;
}

const UpstreamConfig* Config::find_upstream(std::string_view name) const {
  for (const UpstreamConfig& upstream : upstreams) {
    if (upstream.name == name) return &upstream;
  }
  return nullptr;
}

// ---- Reading the TOML tree ----

namespace {

// A head is buffered whole for each connection, so its limit stays modest.
constexpr std::uint64_t kMaxHeaderBytesLimit = 16ull << 20;
constexpr unsigned kMaxWorkers = 1024;
constexpr std::int64_t kMaxConnectionsLimit = 10'000'000;
// More idle connections to one server than there are ephemeral ports could never be opened.
constexpr std::int64_t kMaxKeepalive = 65535;

std::string invalid_address(std::string_view text) {
  return "invalid address \"" + std::string(text) +
         "\"; write IPV4:PORT, [IPV6]:PORT or localhost:PORT (other host names are not resolved)";
}

std::string invalid_cidr(std::string_view text) {
  return "invalid CIDR \"" + std::string(text) +
         "\"; write an address or ADDRESS/PREFIX with no bits set after the prefix, e.g. \"10.0.0.0/8\", \"::1/128\"";
}

// [control]
constexpr std::int64_t kMaxFeedBuffer = 10'000'000;
constexpr std::int64_t kMaxSubscribers = 1'000'000;
constexpr std::uint64_t kMaxSubscriberBuffer = 1ull << 30;
constexpr std::uint64_t kMaxKeptBodies = 1ull << 36;
constexpr std::int64_t kMaxWebhookQueue = 10'000'000;
// The event types a webhook may ask for (policies/store/conflict_feed.h).
constexpr std::string_view kFeedEventTypes[] = {kFeedConflict, kFeedMerged,     kFeedLocked,
                                                kFeedLockExpired, kFeedLockBroken, kFeedResolved};

// A token's name: what logs, `resolved` events and /config show.
bool valid_token_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' || c == '_' || c == '-';
  });
}

// "unknown scope 'lock'; did you mean 'locks'? (scopes: feed, resolve, history, locks)"
std::string unknown_word(std::string_view what, std::string_view word, const std::vector<std::string_view>& known) {
  std::string message = "unknown " + std::string(what) + " " + single_quoted(word);
  if (auto suggestion = nearest_name(word, known)) message += "; did you mean " + single_quoted(*suggestion) + "?";
  return message + " (" + std::string(what) + "s: " + comma_list(known) + ")";
}

enum class PortZero { Allowed, Refused };
// "listen" and "servers": a list of HOST:PORT; an address listed twice is refused, since
// a second listen on it would fail at startup and a second server would be a silent weight.
std::vector<SocketAddress> read_addresses(const TableReader& reader, std::string_view name, bool single_allowed,
                                          PortZero port_zero) {
  std::vector<SocketAddress> out;
  reader.strings(name, "addresses", single_allowed, "no addresses; give at least one, e.g. \"127.0.0.1:8081\"",
                 [&](const toml::node& at, std::string element_key, std::string_view text) {
                   auto address = parse_socket_address(text);
                   if (!address) {
                     reader.error(at, std::move(element_key), invalid_address(text));
                   } else if (address->port == 0 && port_zero == PortZero::Refused) {
                     reader.error(at, std::move(element_key),
                                  "port 0 cannot be connected to; give the port the server listens on");
                   } else if (std::find_if(out.begin(), out.end(), [&](const SocketAddress& a) {
                                return a.host == address->host && a.port == address->port;
                              }) != out.end()) {
                     reader.error(at, std::move(element_key), address->text() + " is listed twice");
                   } else {
                     out.push_back(std::move(*address));
                   }
                 });
  return out;
}

std::optional<SocketAddress> read_address(const TableReader& reader, std::string_view name) {
  auto text = reader.string(name);
  if (!text) return std::nullopt;
  auto address = parse_socket_address(*text);
  if (!address) reader.error(*reader.find(name), reader.key(name), invalid_address(*text));
  return address;
}

class FileReader {
 public:
  FileReader(ConfigDiagnostics& diagnostics, const PolicyRegistry& kinds) : diagnostics_(diagnostics), kinds_(kinds) {}

  Config read(const toml::table& root, const std::string& file) {
    Config config;
    config.file = file;
    config.policy_kinds = kinds_;
    TableReader top(root, "", diagnostics_);
    top.reject_unknown_keys({"server", "admin", "log", "control", "upstream", "route"});
    read_server(top, config.server);
    if (auto admin = top.table("admin")) {
      admin->reject_unknown_keys({"listen"});
      config.admin.listen = read_address(*admin, "listen");
    }
    read_log(top, config.log);
    read_control(top, config.control);
    read_upstreams(top, config.upstreams);
    read_routes(top, config);
    return config;
  }

 private:
  // Where a route's parts are in the file, for the checks that span routes.
  struct RouteSource {
    std::size_t index = 0;  // in the [[route]] array
    const toml::node* name = nullptr;
    const toml::node* path = nullptr;
    const toml::node* upstream = nullptr;
    bool path_and_methods_valid = false;
  };

  void read_server(const TableReader& top, ServerConfig& server) {
    server.listen = {SocketAddress{"127.0.0.1", 8080}};
    auto section = top.table("server");
    if (section) {
      section->reject_unknown_keys({"listen", "workers", "header_timeout", "body_timeout", "idle_timeout", "drain_timeout",
                                    "body_deadline",
                                    "max_header_bytes", "max_body_bytes", "max_connections",
                                    "trusted_proxies", "forward_raw_path", "case_insensitive_paths",
                                    "control_prefix"});
      if (section->find("listen")) {
        server.listen = read_addresses(*section, "listen", true, PortZero::Allowed);
      }
      section->integer("workers", server.workers, 0, kMaxWorkers);
      section->duration("header_timeout", server.header_timeout, kPositive);
      section->duration("body_timeout", server.body_timeout, kPositive);
      section->duration("body_deadline", server.body_deadline, kPositive);
      section->duration("idle_timeout", server.idle_timeout, kPositive);
      section->duration("drain_timeout", server.drain_timeout, kNoMinimum);
      section->size("max_header_bytes", server.max_header_bytes, 1, kMaxHeaderBytesLimit);
      section->size("max_body_bytes", server.max_body_bytes, 1, std::numeric_limits<std::uint64_t>::max());
      section->integer("max_connections", server.max_connections, 1, kMaxConnectionsLimit);
      section->boolean("forward_raw_path", server.forward_raw_path);
      section->boolean("case_insensitive_paths", server.case_insensitive_paths);
      read_control_prefix(*section, server);
      section->strings("trusted_proxies", "CIDRs", false, "",
                       [&](const toml::node& at, std::string key, std::string_view text) {
                         if (auto cidr = parse_cidr(text)) {
                           server.trusted_proxies.push_back(std::move(*cidr));
                         } else {
                           section->error(at, std::move(key), invalid_cidr(text));
                         }
                       });
    }
    if (server.workers == 0) server.workers = std::max(1u, std::thread::hardware_concurrency());
  }

  // "control_prefix": a literal path checked and normalised as a route pattern's literal
  // segments are, kept without a trailing '/'.
  void read_control_prefix(const TableReader& section, ServerConfig& server) {
    auto text = section.string("control_prefix");
    if (!text) return;
    control_prefix_node_ = section.find("control_prefix");
    const toml::node& at = *control_prefix_node_;
    std::string key = section.key("control_prefix");
    if (!text->starts_with('/')) {
      section.error(at, key, "must start with '/', e.g. \"/_arbiter\"");
      return;
    }
    if (text->find_first_of("{}*") != std::string::npos) {
      section.error(at, key, "a literal path: '{', '}' and '*' cannot appear");
      return;
    }
    std::string normal, why;
    try {
      PathPattern pattern(*text);
    } catch (const std::invalid_argument& e) {
      section.error(at, key, e.what());
      return;
    }
    normalize_path(*text, normal, why);
    if (normal.size() > 1 && normal.back() == '/') normal.pop_back();
    if (normal == "/") {
      section.error(at, key, "cannot be \"/\": Arbiter would answer every path itself; give a path such as \"/_arbiter\"");
      return;
    }
    server.control_prefix = std::move(normal);
  }

  void read_log(const TableReader& top, LogConfig& log) {
    auto section = top.table("log");
    if (!section) return;
    section->reject_unknown_keys({"access", "format"});
    if (auto access = section->string("access")) {
      if (*access == "stdout" || *access == "off") {
        log.access = *access == "stdout";
      } else if (access->find('/') != std::string::npos && access->back() != '/') {
        log.access_path = *access;  // a file; a path without '/' is taken for a misspelt keyword
      } else {
        section->error(*section->find("access"), section->key("access"),
                       "expected \"stdout\", \"off\" or a file path with a '/' (\"/var/log/arbiter/access.log\", "
                       "\"./access.log\"), got \"" + *access + "\"");
      }
    }
    section->choice("format", log.format, {"json", "combined"});  // AccessLogFormat's order
  }

  // [control]: who may use the control endpoints, the conflict feed's bounds, its webhooks.
  void read_control(const TableReader& top, ControlConfig& control) {
    control.allow = {*parse_cidr("127.0.0.0/8"), *parse_cidr("::1/128")};
    auto section = top.table("control");
    if (!section) return;
    section->reject_unknown_keys({"allow", "tokens", "feed_buffer", "keep_body_bytes", "keep_bodies_total",
                                  "heartbeat", "retry", "max_subscribers", "max_subscriber_buffer", "webhook"});
    if (section->find("allow")) {
      control.allow.clear();
      section->strings("allow", "CIDRs", false, "", [&](const toml::node& at, std::string key, std::string_view text) {
        if (auto cidr = parse_cidr(text)) {
          control.allow.push_back(std::move(*cidr));
        } else {
          section->error(at, std::move(key), invalid_cidr(text));
        }
      });
    }
    read_control_tokens(*section, control.tokens);
    section->integer("feed_buffer", control.feed.capacity, 1, kMaxFeedBuffer);
    section->size("keep_bodies_total", control.feed.max_body_bytes, 0, kMaxKeptBodies);
    section->size("keep_body_bytes", control.feed.keep_body_bytes, 0, control.feed.max_body_bytes);
    section->duration("heartbeat", control.heartbeat, kPositive);
    section->duration("retry", control.retry, kPositive);
    section->integer("max_subscribers", control.max_subscribers, 1, kMaxSubscribers);
    section->size("max_subscriber_buffer", control.max_subscriber_buffer, 1, kMaxSubscriberBuffer);
    read_webhooks(*section, control.webhooks);
  }

  // tokens = [{ name, sha256, scopes }, ...] or [[control.tokens]]. A token in error is kept:
  // the diagnostics refuse the whole file anyway.
  void read_control_tokens(const TableReader& section, std::vector<ControlToken>& tokens) {
    for_each_table(section, "tokens", "tokens = [{ name = \"ops\", sha256 = \"...\", scopes = [\"feed\"] }]",
                   [&](const TableReader& reader) {
      reader.reject_unknown_keys({"name", "sha256", "scopes"});
      ControlToken& token = tokens.emplace_back();
      const toml::node* name_at = reader.require("name");
      if (auto name = name_at ? reader.string("name") : std::nullopt) {
        token.name = *name;
        if (!valid_token_name(token.name)) {
          reader.error(*name_at, reader.key("name"),
                       "\"" + token.name + "\" is not a token name: 1 to 64 letters, digits, '.', '_' or '-'");
        } else if (std::count_if(tokens.begin(), tokens.end(), [&](const ControlToken& t) { return t.name == *name; }) > 1) {
          reader.error(*name_at, reader.key("name"), "duplicate token name " + single_quoted(token.name));
        }
      }
      const toml::node* hash_at = reader.require("sha256");
      if (auto hash = hash_at ? reader.string("sha256") : std::nullopt) {
        // Not echoed: a token pasted here by mistake would reach the log and POST /reload's answer.
        if (hash->size() != 64 ||
            !std::all_of(hash->begin(), hash->end(), [](char c) { return hex_digit_value(c) >= 0; })) {
          reader.error(*hash_at, reader.key("sha256"),
                       "expected the 64 hex digits of the token's SHA-256 (`arbiter hash-token` prints the line), got " +
                           std::to_string(hash->size()) + " characters" +
                           (hash->size() == 64 ? " that are not all hex digits" : std::string()));
        } else {
          std::transform(hash->begin(), hash->end(), std::back_inserter(token.sha256),
                         [](char c) { return static_cast<char>(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c); });
          for (std::size_t i = 0; i + 1 < tokens.size(); ++i) {
            if (tokens[i].sha256 == token.sha256) {
              reader.error(*hash_at, reader.key("sha256"), "the same token as " + single_quoted(tokens[i].name));
            }
          }
        }
      }
      std::vector<std::string_view> known(std::begin(kControlScopes), std::end(kControlScopes));
      if (!reader.require("scopes")) return;
      reader.strings("scopes", "scopes", false, "no scopes; give at least one of " + comma_list(known),
                     [&](const toml::node& at, std::string key, std::string_view scope) {
        if (std::find(known.begin(), known.end(), scope) == known.end()) {
          reader.error(at, std::move(key), unknown_word("scope", scope, known));
        } else if (std::find(token.scopes.begin(), token.scopes.end(), scope) == token.scopes.end()) {
          token.scopes.emplace_back(scope);
        }
      });
    });
  }

  // [[control.webhook]]: url (http://HOST:PORT/path), events, secret, max_retry, queue, timeout.
  void read_webhooks(const TableReader& section, std::vector<WebhookConfig>& webhooks) {
    for_each_table(section, "webhook", "[[control.webhook]] tables", [&](const TableReader& reader) {
      reader.reject_unknown_keys({"url", "events", "secret", "max_retry", "queue", "timeout"});
      WebhookConfig& webhook = webhooks.emplace_back();
      if (const toml::node* at = reader.require("url")) {
        if (auto url = reader.string("url")) {
          if (parse_http_url(*url)) {
            webhook.url = *url;
          } else {
            reader.error(*at, reader.key("url"),
                         "invalid webhook url \"" + *url +
                             "\"; write http://HOST:PORT/PATH with a numeric address or localhost, e.g. "
                             "\"http://127.0.0.1:9000/hooks\" (no https)");
          }
        }
      }
      std::vector<std::string_view> types(std::begin(kFeedEventTypes), std::end(kFeedEventTypes));
      reader.strings("events", "event types", false, "no events; leave the key out for every type, or name some of " +
                                                         comma_list(types),
                     [&](const toml::node& at, std::string key, std::string_view type) {
        if (std::find(types.begin(), types.end(), type) == types.end()) {
          reader.error(at, std::move(key), unknown_word("event type", type, types));
        } else if (std::find(webhook.events.begin(), webhook.events.end(), type) == webhook.events.end()) {
          webhook.events.emplace_back(type);
        }
      });
      if (auto secret = reader.string("secret")) webhook.secret = *secret;
      reader.duration("max_retry", webhook.max_retry, kNoMinimum);
      reader.integer("queue", webhook.queue, 1, kMaxWebhookQueue);
      reader.duration("timeout", webhook.timeout, kPositive);
    });
  }

  // Calls fn(reader) for each table of the array `name` of `section` (inline tables or
  // [[section.name]]); reports anything else with `example` saying what to write.
  template <typename Fn>
  void for_each_table(const TableReader& section, std::string_view name, std::string_view example, Fn&& fn) {
    const toml::node* node = section.find(name);
    if (!node) return;
    const toml::array* array = node->as_array();
    if (!array) {
      section.error(*node, section.key(name), type_mismatch("an array of tables", *node) + "; write " + std::string(example));
      return;
    }
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& element = *array->get(i);
      std::string key = section.key(name) + "[" + std::to_string(i) + "]";
      if (!element.is_table()) {
        section.error(element, key, type_mismatch("a table", element));
        continue;
      }
      fn(section.child(*element.as_table(), key));
    }
  }

  void read_upstreams(const TableReader& top, std::vector<UpstreamConfig>& upstreams) {
    if (!top.find("upstream")) {
      diagnostics_.add_unplaced("upstream",
                                "no upstream defined; add one, e.g. [upstream.backend] with "
                                "servers = [\"127.0.0.1:8081\"]");
      return;
    }
    auto section = top.table("upstream");
    if (!section) return;
    if (section->contents().empty()) {
      top.error(*top.find("upstream"), "upstream", "no upstream defined; add one, e.g. [upstream.backend]");
      return;
    }
    // toml++ keeps keys sorted by name; the Config promises file order.
    std::vector<std::pair<std::string_view, const toml::node*>> in_file_order;
    for (auto&& [name, node] : section->contents()) in_file_order.emplace_back(name.str(), &node);
    std::stable_sort(in_file_order.begin(), in_file_order.end(), [](const auto& a, const auto& b) {
      const toml::source_position& pa = a.second->source().begin;
      const toml::source_position& pb = b.second->source().begin;
      return std::pair(pa.line, pa.column) < std::pair(pb.line, pb.column);
    });
    for (const auto& [name, node] : in_file_order) {
      if (!node->is_table()) {
        section->error(*node, section->key(name),
                       type_mismatch("a table", *node) + "; write each upstream as [upstream.NAME]");
        continue;
      }
      TableReader upstream(*node->as_table(), section->key(name), diagnostics_);
      upstream.reject_unknown_keys({"servers", "connect_timeout", "response_timeout", "fail_timeout", "keepalive"});
      UpstreamConfig& config = upstreams.emplace_back();
      config.name = std::string(name);
      config.line = static_cast<int>(node->source().begin.line);
      if (upstream.require("servers")) {
        config.servers = read_addresses(upstream, "servers", false, PortZero::Refused);
      }
      upstream.duration("connect_timeout", config.connect_timeout, kPositive);
      upstream.duration("response_timeout", config.response_timeout, kPositive);
      upstream.duration("fail_timeout", config.fail_timeout, kNoMinimum);
      upstream.integer("keepalive", config.keepalive, 0, kMaxKeepalive);
    }
  }

  void read_routes(const TableReader& top, Config& config) {
    const toml::node* node = top.find("route");
    if (!node) {
      diagnostics_.add_unplaced("route", "no route defined; add at least one [[route]] with name, path and upstream");
      return;
    }
    const toml::array* array = node->as_array();
    if (!array) {
      top.error(*node, "route",
                node->is_table() ? "write [[route]] (an array of tables), not [route]"
                                 : type_mismatch("an array of [[route]] tables", *node));
      return;
    }
    if (array->empty()) {
      top.error(*node, "route", "no route defined; add at least one [[route]]");
      return;
    }
    std::vector<RouteSource> sources;
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& element = *array->get(i);
      if (!element.is_table()) {
        top.error(element, route_key(i), type_mismatch("a table", element));
        continue;
      }
      RouteConfig& route = config.routes.emplace_back();
      route.line = static_cast<int>(element.source().begin.line);
      route.column = static_cast<int>(element.source().begin.column);
      TableReader reader(*element.as_table(), route_key(i), diagnostics_);
      sources.push_back(read_route(reader, route, config));
      sources.back().index = i;
    }
    check_route_names(config.routes, sources);
    check_route_upstreams(config, sources);
    check_reachability(config.routes, sources, config.server.case_insensitive_paths);
    check_control_prefix(config, sources);
  }

  // A route whose every path lies in the control namespace ([server] control_prefix, and below
  // it) could never be reached: Arbiter answers those paths before routing. A route that only
  // overlaps it (a catch-all "/*", "/{tenant}/*") is fine: it keeps every other path.
  void check_control_prefix(const Config& config, const std::vector<RouteSource>& sources) {
    bool lower = config.server.case_insensitive_paths;
    const std::string& prefix = config.server.control_prefix;
    PathPattern itself(prefix, lower);
    PathPattern below(prefix + "/*", lower);
    std::string where = control_prefix_node_ != nullptr
                            ? "(line " + std::to_string(control_prefix_node_->source().begin.line) + ")"
                            : "(the default)";
    for (std::size_t i = 0; i < config.routes.size(); ++i) {
      if (!sources[i].path_and_methods_valid) continue;
      const RouteConfig& route = config.routes[i];
      PathPattern pattern(route.path, lower);
      if (!itself.covers(pattern) && !below.covers(pattern)) continue;
      diagnostics_.add(*sources[i].path, route_key(sources[i].index, "path"),
                       subject(route) + "path " + single_quoted(route.path) + " lies inside [server] control_prefix " +
                           single_quoted(prefix) + " " + where +
                           ", whose paths Arbiter answers itself before routing; move the route, or set another "
                           "control_prefix");
    }
  }

  RouteSource read_route(TableReader& reader, RouteConfig& route, const Config& config) {
    RouteSource source;
    // The name first, so that every other message can say which route it is about.
    if ((source.name = reader.require("name"))) {
      if (auto name = reader.string("name")) {
        if (name->empty()) {
          reader.error(*source.name, reader.key("name"), "a route name cannot be empty");
        } else {
          route.name = *name;
          reader.set_subject(subject(route));
        }
      }
    }
    reader.reject_unknown_keys(route_keys());
    std::size_t errors_before = diagnostics_.count();
    bool path_valid = false;
    if ((source.path = reader.require("path"))) {
      if (auto path = reader.string("path")) {
        route.path = *path;
        try {
          PathPattern pattern(route.path);
          path_valid = true;
        } catch (const std::invalid_argument& e) {
          reader.error(*source.path, reader.key("path"), e.what());
        }
      }
    }
    bool methods_valid = read_methods(reader, route.methods);
    source.path_and_methods_valid = source.path && diagnostics_.count() == errors_before;
    if ((source.upstream = reader.require("upstream"))) {
      if (auto upstream = reader.string("upstream")) route.upstream = *upstream;
    }
    // Each kind reads its own keys, in registration order.
    RouteContext context{route.name, path_valid ? std::optional<std::string_view>(route.path) : std::nullopt,
                         route.methods, methods_valid};
    context.control_prefix = config.server.control_prefix;
    if (const UpstreamConfig* upstream = config.find_upstream(route.upstream)) {
      context.upstream_timeouts = RouteContext::UpstreamTimeouts{upstream->connect_timeout, upstream->response_timeout};
    }
    for (const PolicyKind* kind : kinds_.kinds()) {
      if (auto policy = kind->read(reader, context)) route.policies.push_back(std::move(policy));
    }
    // Methods a policy answers itself (the lock policy's LOCK and UNLOCK) reach the route
    // whatever its `methods` say.
    for (const auto& policy : route.policies) {
      for (std::string_view method : policy->added_methods()) {
        if (!route.methods.empty() && std::find(route.methods.begin(), route.methods.end(), method) == route.methods.end()) {
          route.methods.emplace_back(method);
        }
      }
    }
    reader.boolean("websocket", route.websocket);
    reader.duration("tunnel_idle_timeout", route.tunnel_idle_timeout, kPositive);
    return source;
  }

  // The keys a [[route]] may have, in the order an unknown key's message lists them: its own,
  // then each policy kind's first key (its table) in registration order, then the kinds'
  // other keys (rate_limit_headers), then its own keys about tunnels.
  std::vector<std::string_view> route_keys() const {
    std::vector<std::string_view> keys = {"name", "path", "methods", "upstream"};
    for (const PolicyKind* kind : kinds_.kinds()) {
      std::vector<std::string_view> own = kind->route_keys();
      if (!own.empty()) keys.push_back(own.front());
    }
    for (const PolicyKind* kind : kinds_.kinds()) {
      std::vector<std::string_view> own = kind->route_keys();
      for (std::size_t i = 1; i < own.size(); ++i) keys.push_back(own[i]);
    }
    keys.push_back("websocket");
    keys.push_back("tunnel_idle_timeout");
    return keys;
  }

  void check_route_names(const std::vector<RouteConfig>& routes, const std::vector<RouteSource>& sources) {
    std::unordered_map<std::string_view, std::size_t> first_with;  // name -> first route with it
    for (std::size_t i = 0; i < routes.size(); ++i) {
      if (routes[i].name.empty()) continue;
      auto [first, inserted] = first_with.try_emplace(routes[i].name, i);
      if (inserted) continue;
      std::size_t j = first->second;
      diagnostics_.add(*sources[i].name, route_key(sources[i].index, "name"),
                       "duplicate route name " + single_quoted(routes[i].name) + "; " + route_key(sources[j].index) +
                           " at line " + std::to_string(routes[j].line) + " already has it");
    }
  }

  void check_route_upstreams(const Config& config, const std::vector<RouteSource>& sources) {
    if (config.upstreams.empty()) return;  // reported once already, as the missing upstream
    std::vector<std::string_view> defined;
    for (const UpstreamConfig& upstream : config.upstreams) defined.push_back(upstream.name);
    for (std::size_t i = 0; i < config.routes.size(); ++i) {
      const RouteConfig& route = config.routes[i];
      if (!sources[i].upstream || !sources[i].upstream->is_string() || config.find_upstream(route.upstream)) {
        continue;
      }
      std::string message = subject(route) + "unknown upstream " + single_quoted(route.upstream);
      if (auto suggestion = nearest_name(route.upstream, defined)) {
        message += "; did you mean " + single_quoted(*suggestion) + "?";
      }
      message += " (defined: " + comma_list(defined) + ")";
      diagnostics_.add(*sources[i].upstream, route_key(sources[i].index, "upstream"), std::move(message));
    }
  }

  // A route that an earlier one always takes first is a mistake in the order of routes.
  // Only routes with a valid path and methods take part: a route broadened by a dropped bad
  // value must not make a false claim about the routes after it.
  void check_reachability(const std::vector<RouteConfig>& routes, const std::vector<RouteSource>& sources,
                          bool case_insensitive_paths) {
    std::vector<RouteConfig> checked;
    std::vector<std::size_t> checked_source;  // into routes and sources
    for (std::size_t i = 0; i < routes.size(); ++i) {
      if (!sources[i].path_and_methods_valid) continue;
      checked.push_back(routes[i]);
      checked_source.push_back(i);
    }
    Router router(checked, case_insensitive_paths);
    std::vector<std::optional<std::size_t>> shadowing = router.shadowing();
    for (std::size_t k = 0; k < checked.size(); ++k) {
      const std::optional<std::size_t>& earlier = shadowing[k];
      if (!earlier) continue;
      const RouteConfig& shadowing = checked[*earlier];
      std::string shadowing_label = shadowing.name.empty() ? route_key(sources[checked_source[*earlier]].index)
                                                           : "route " + single_quoted(shadowing.name);
      const RouteSource& source = sources[checked_source[k]];
      diagnostics_.add(*source.path, route_key(source.index, "path"),
                       subject(checked[k]) + "unreachable: " + shadowing_label + " (line " +
                           std::to_string(shadowing.line) + ") already matches every request this route takes");
    }
  }

  static std::string route_key(std::size_t index) { return "route[" + std::to_string(index) + "]"; }
  static std::string route_key(std::size_t index, std::string_view name) {
    return route_key(index) + "." + std::string(name);
  }
  static std::string subject(const RouteConfig& route) {
    return route.name.empty() ? std::string() : "route " + single_quoted(route.name) + ": ";
  }

  ConfigDiagnostics& diagnostics_;
  const PolicyRegistry& kinds_;
  const toml::node* control_prefix_node_ = nullptr;  // [server] control_prefix, when the file sets it
};

}  // namespace

Config parse_config(std::string_view toml_text, const std::string& file_name, const PolicyRegistry& kinds) {
  ConfigDiagnostics diagnostics(file_name);
  toml::table root;
  try {
    root = toml::parse(toml_text, std::string_view(file_name));
  } catch (const toml::parse_error& e) {
    diagnostics.add(e.source().begin, "", "syntax error: " + std::string(e.description()));
    diagnostics.throw_if_any();
  }
  Config config = FileReader(diagnostics, kinds).read(root, file_name);
  diagnostics.throw_if_any();
  return config;
}

Config load_config_file(const std::string& path, const PolicyRegistry& kinds) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  std::string text;
  int error = file ? 0 : errno;
  if (file) {
    char buffer[8192];
    std::size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) text.append(buffer, n);
    if (std::ferror(file.get())) error = errno;  // e.g. EISDIR: fopen accepts a directory
  }
  if (error != 0) {
    throw ConfigError({ConfigDiagnostic{path, 0, 0, "", "cannot read the file: " + std::string(std::strerror(error))}});
  }
  return parse_config(text, path, kinds);
}

// ---- The route table ----

namespace {

std::string methods_column(const RouteConfig& route) {
  if (route.methods.empty()) return "*";
  return comma_list(route.methods);
}

std::string upstream_column(const Config& config, const RouteConfig& route) {
  const UpstreamConfig* upstream = config.find_upstream(route.upstream);
  if (!upstream) return route.upstream;
  std::string servers;
  for (const SocketAddress& server : upstream->servers) {
    if (!servers.empty()) servers += ", ";
    servers += server.text();
  }
  return route.upstream + " (" + servers + ")";
}

// Each policy's summary, in the order the policies run, e.g. "etag(verify=upstream)".
std::string policies_column(const RouteConfig& route) {
  std::vector<const PolicyConfig*> in_chain_order;
  for (const auto& policy : route.policies) in_chain_order.push_back(policy.get());
  std::stable_sort(in_chain_order.begin(), in_chain_order.end(), [](const PolicyConfig* a, const PolicyConfig* b) {
    return a->kind().chain_position() < b->kind().chain_position();
  });
  std::vector<std::string> policies;
  for (const PolicyConfig* policy : in_chain_order) policies.push_back(policy->summary());
  if (policies.empty()) return "-";
  return comma_list(policies);
}

}  // namespace

std::string format_route_table(const Config& config) {
  using Row = std::vector<std::string>;
  std::vector<Row> rows = {{"ROUTE", "PATH", "METHODS", "UPSTREAM", "POLICIES"}};
  for (const RouteConfig& route : config.routes) {
    rows.push_back({route.name, route.path, methods_column(route), upstream_column(config, route),
                    policies_column(route)});
  }
  std::vector<std::size_t> widths(rows[0].size(), 0);
  for (const Row& row : rows) {
    for (std::size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out;
  for (const Row& row : rows) {
    for (std::size_t c = 0; c < row.size(); ++c) {
      out += row[c];
      if (c + 1 < row.size()) out += std::string(widths[c] - row[c].size() + 2, ' ');
    }
    out += '\n';
  }
  return out;
}

}  // namespace arbiter
