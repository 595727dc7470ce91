#include "proxy/control/config_json.h"

#include <nlohmann/json.hpp>


namespace arbiter {

namespace {

using Json = nlohmann::ordered_json;

Json addresses(const std::vector<SocketAddress>& list) {
  Json out = Json::array();
  for (const SocketAddress& address : list) out.push_back(address.text());
  return out;
}

Json methods(const std::vector<std::string>& list) {
  if (list.empty()) return nullptr;  // every method, as leaving the key out of the file means
  return list;
}

Json route_json(const RouteConfig& route) {
  Json out{{"name", route.name},
           {"path", route.path},
           {"methods", methods(route.methods)},
           {"upstream", route.upstream}};
  // Each policy kind writes its own keys ("etag", "limit", ...), in registration order.
  for (const auto& policy : route.policies) policy->write_json(out);
  out["websocket"] = route.websocket;
  out["tunnel_idle_timeout"] = duration_text(route.tunnel_idle_timeout);
  return out;
}

}  // namespace

std::string config_to_json(const Config& config) {
  const ServerConfig& server = config.server;
  Json trusted = Json::array();
  for (const Cidr& cidr : server.trusted_proxies) trusted.push_back(cidr.text);
  Json out;
  out["file"] = config.file;
  out["server"] = Json{{"listen", addresses(server.listen)},
                       {"workers", server.workers},
                       {"header_timeout", duration_text(server.header_timeout)},
                       {"body_timeout", duration_text(server.body_timeout)},
                       {"body_deadline", duration_text(server.body_deadline)},
                       {"idle_timeout", duration_text(server.idle_timeout)},
                       {"drain_timeout", duration_text(server.drain_timeout)},
                       {"max_header_bytes", server.max_header_bytes},
                       {"max_body_bytes", server.max_body_bytes},
                       {"max_connections", server.max_connections},
                       {"trusted_proxies", std::move(trusted)},
                       {"forward_raw_path", server.forward_raw_path},
                       {"case_insensitive_paths", server.case_insensitive_paths},
                       {"control_prefix", server.control_prefix}};
  out["admin"] = Json{{"listen", config.admin.listen ? Json(config.admin.listen->text()) : Json(nullptr)}};
  out["log"] = Json{{"access", !config.log.access              ? std::string("off")
                              : config.log.access_path.empty() ? std::string("stdout")
                                                               : config.log.access_path},
                    {"format", access_log_format_name(config.log.format)}};
  // Tokens by name and scopes, webhooks by url and events: never a hash or a secret.
  const ControlConfig& control = config.control;
  Json allow = Json::array();
  for (const Cidr& cidr : control.allow) allow.push_back(cidr.text);
  Json tokens = Json::array();
  for (const ControlToken& token : control.tokens) tokens.push_back(Json{{"name", token.name}, {"scopes", token.scopes}});
  Json webhooks = Json::array();
  for (const WebhookConfig& webhook : control.webhooks) {
    webhooks.push_back(Json{{"url", webhook.url},
                            {"events", webhook.events},
                            {"signed", !webhook.secret.empty()},
                            {"max_retry", duration_text(webhook.max_retry)},
                            {"queue", webhook.queue},
                            {"timeout", duration_text(webhook.timeout)}});
  }
  out["control"] = Json{{"allow", std::move(allow)},
                        {"tokens", std::move(tokens)},
                        {"feed_buffer", control.feed.capacity},
                        {"keep_body_bytes", control.feed.keep_body_bytes},
                        {"keep_bodies_total", control.feed.max_body_bytes},
                        {"heartbeat", duration_text(control.heartbeat)},
                        {"retry", duration_text(control.retry)},
                        {"max_subscribers", control.max_subscribers},
                        {"max_subscriber_buffer", control.max_subscriber_buffer},
                        {"webhook", std::move(webhooks)}};
  Json upstreams = Json::object();
  for (const UpstreamConfig& upstream : config.upstreams) {
    upstreams[upstream.name] = Json{{"servers", addresses(upstream.servers)},
                                    {"connect_timeout", duration_text(upstream.connect_timeout)},
                                    {"response_timeout", duration_text(upstream.response_timeout)},
                                    {"fail_timeout", duration_text(upstream.fail_timeout)},
                                    {"keepalive", upstream.keepalive}};
  }
  out["upstream"] = std::move(upstreams);
  Json routes = Json::array();
  for (const RouteConfig& route : config.routes) routes.push_back(route_json(route));
  out["route"] = std::move(routes);
  // Route names and paths come from the file and are taken as they are; invalid UTF-8 in them
  // is replaced rather than failing the whole answer.
  return out.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace arbiter
