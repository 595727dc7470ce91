#include "proxy/http/problem.h"

namespace arbiter {

Problem Problem::make(std::string_view slug, int status, std::string title, std::string detail) {
  Problem p;
  p.status = status;
  p.type = "urn:arbiter:problem:";
  p.type.append(slug);
  p.title = std::move(title);
  p.detail = std::move(detail);
  return p;
}

std::string Problem::to_json(std::string_view request_id) const {
  nlohmann::ordered_json body;
  body["type"] = type.empty() ? std::string("about:blank") : type;
  body["title"] = title.empty() ? std::string(reason_phrase(status)) : title;
  body["status"] = status;
  if (!detail.empty()) body["detail"] = detail;
  if (!request_id.empty()) {
    body["instance"] = "urn:arbiter:request:" + std::string(request_id);
    body["request-id"] = request_id;
  }
  for (const auto& [name, value] : extensions) body[name] = value;
  // Replace invalid UTF-8 rather than throw: details may quote client input.
  return body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";  // RFC 4918 section 11.3
    case 424: return "Failed Dependency";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

}  // namespace arbiter
