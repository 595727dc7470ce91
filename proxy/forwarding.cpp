#include "proxy/forwarding.h"

#include <algorithm>
#include <array>
#include <charconv>

#include "policies/problem.h"

namespace arbiter {

namespace {

constexpr std::array<std::string_view, 8> kHopByHop = {
    "connection", "keep-alive", "proxy-connection", "te",
    "trailer",    "transfer-encoding", "upgrade", "content-length"};

bool is_trusted(std::string_view address, const std::vector<Cidr>& trusted) {
  for (const Cidr& cidr : trusted) {
    if (cidr.contains(address)) return true;
  }
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

void append_number(std::string& out, std::uint64_t n) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n);
  out.append(digits, end);
}

void append_framing(std::string& out, BodyFraming framing, std::uint64_t content_length) {
  if (framing == BodyFraming::ContentLength) {
    out.append("Content-Length: ");
    append_number(out, content_length);
    out.append("\r\n");
  } else if (framing == BodyFraming::Chunked) {
    out.append("Transfer-Encoding: chunked\r\n");
  }
}

bool is_forwarding_field(std::string_view name) {
  return iequals(name, "x-forwarded-for") || iequals(name, "x-forwarded-proto") ||
         iequals(name, "x-forwarded-host") || iequals(name, "forwarded") || iequals(name, "x-real-ip") ||
         iequals(name, "via") || iequals(name, "x-request-id") || iequals(name, "expect");
}

bool is_hop_by_hop(std::string_view name) {
  return std::any_of(kHopByHop.begin(), kHopByHop.end(), [name](std::string_view hop) { return iequals(name, hop); });
}

bool is_listed(std::string_view name, std::span<const std::string> names) {
  return std::any_of(names.begin(), names.end(), [name](const std::string& listed) { return iequals(name, listed); });
}

// RFC 9110 section 5.6.2.
bool is_token(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    bool tchar = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!tchar) return false;
  }
  return true;
}

// A token as it is, anything else as a quoted-string (RFC 9110 section 5.6.4).
void append_token_or_quoted(std::string& out, std::string_view value) {
  if (is_token(value)) {
    out.append(value);
    return;
  }
  out.push_back('"');
  for (char c : value) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

}  // namespace

void remove_hop_by_hop(HeaderList& headers, bool keep_upgrade) {
  // Views into the list's storage, which remove_if leaves in place.
  std::vector<std::string_view> listed;
  for (HeaderField field : headers) {
    if (iequals(field.name, "connection")) {
      for_each_list_element(field.value, [&](std::string_view token) { listed.push_back(token); });
    }
  }
  headers.remove_if([&](std::string_view name) {
    if (keep_upgrade && iequals(name, "upgrade")) return false;
    return is_hop_by_hop(name) ||
           std::any_of(listed.begin(), listed.end(), [name](std::string_view other) { return iequals(name, other); });
  });
}

std::string believed_client_address(std::string_view peer_address, const HeaderList& request_headers,
                                    const std::vector<Cidr>& trusted_proxies) {
  if (trusted_proxies.empty() || !is_trusted(peer_address, trusted_proxies)) {
    return std::string(peer_address);
  }
  // Walk the chain right to left: every hop we trust vouches for the one before it.
  std::vector<std::string_view> chain;
  for (HeaderField field : request_headers) {
    if (iequals(field.name, "x-forwarded-for")) {
      for_each_list_element(field.value, [&](std::string_view hop) { chain.push_back(hop); });
    }
  }
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    if (!is_trusted(*it, trusted_proxies)) return std::string(*it);
  }
  return chain.empty() ? std::string(peer_address) : std::string(chain.front());
}

void write_upstream_request_head(std::string& out, const UpstreamRequest& request) {
  out.append(request.method);
  out.push_back(' ');
  out.append(request.target);
  out.append(" HTTP/1.1\r\n");

  std::vector<std::string> connection_listed;
  for (HeaderField field : request.headers) {
    if (iequals(field.name, "connection")) {
      for_each_list_element(field.value, [&](std::string_view t) { connection_listed.emplace_back(t); });
    }
  }

  bool has_host = false;
  std::string forwarded_for, forwarded_proto, forwarded_host, forwarded, via;
  std::string_view host;
  for (HeaderField field : request.headers) {
    bool kept_upgrade = request.upgrade && iequals(field.name, "upgrade");
    if ((is_hop_by_hop(field.name) || is_listed(field.name, connection_listed)) && !kept_upgrade) continue;
    if (is_listed(field.name, request.omit_fields)) continue;
    if (is_forwarding_field(field.name)) {
      if (iequals(field.name, "x-forwarded-for") && request.peer_is_trusted_proxy) {
        if (!forwarded_for.empty()) forwarded_for.append(", ");
        forwarded_for.append(trim(field.value));
      } else if (iequals(field.name, "x-forwarded-proto") && request.peer_is_trusted_proxy) {
        forwarded_proto.assign(trim(field.value));
      } else if (iequals(field.name, "x-forwarded-host") && request.peer_is_trusted_proxy) {
        forwarded_host.assign(trim(field.value));
      } else if (iequals(field.name, "forwarded") && request.peer_is_trusted_proxy) {
        if (!trim(field.value).empty()) {
          if (!forwarded.empty()) forwarded.append(", ");
          forwarded.append(trim(field.value));
        }
      } else if (iequals(field.name, "via")) {
        if (!via.empty()) via.append(", ");
        via.append(trim(field.value));
      }
      continue;  // X-Real-IP, X-Request-Id and Expect are the proxy's to send
    }
    if (iequals(field.name, "host")) {
      has_host = true;
      host = field.value;
    }
    append_field(out, field.name, field.value);
  }
  if (!has_host) append_field(out, "Host", request.upstream_authority);
  if (accepts_trailers(request.headers)) {
    // TE is hop-by-hop: only what Arbiter itself can relay is asked of the upstream.
    append_field(out, "TE", "trailers");
    append_field(out, "Connection", "TE");
  }

  if (!forwarded_for.empty()) forwarded_for.append(", ");
  forwarded_for.append(request.peer_address);
  append_field(out, "X-Forwarded-For", forwarded_for);
  append_field(out, "X-Forwarded-Proto", forwarded_proto.empty() ? std::string_view("http") : forwarded_proto);
  if (forwarded_host.empty() && has_host) forwarded_host.assign(host);
  if (!forwarded_host.empty()) append_field(out, "X-Forwarded-Host", forwarded_host);
  if (!forwarded.empty()) forwarded.append(", ");
  forwarded.append(forwarded_element(request.peer_address, has_host, host));
  append_field(out, "Forwarded", forwarded);
  append_field(out, "X-Real-IP", request.believed_client.empty() ? request.peer_address : request.believed_client);
  if (!via.empty()) via.append(", ");
  via.append("1.1 arbiter");
  append_field(out, "Via", via);
  append_field(out, "X-Request-Id", request.request_id);
  if (request.upgrade) append_field(out, "Connection", "upgrade");

  append_framing(out, request.framing, request.content_length);
  out.append("\r\n");
}

std::string forwarded_element(std::string_view for_address, bool has_host, std::string_view host) {
  std::string element = "for=";
  if (for_address.empty()) {
    element.append("unknown");  // RFC 7239 section 6.3
  } else if (for_address.find(':') != std::string_view::npos) {
    element.append("\"[");
    element.append(for_address);
    element.append("]\"");
  } else {
    element.append(for_address);
  }
  element.append(";proto=http");
  if (has_host) {
    element.append(";host=");
    append_token_or_quoted(element, trim(host));
  }
  return element;
}

bool accepts_trailers(const HeaderList& request_headers) {
  bool accepts = false;
  for (HeaderField field : request_headers) {
    if (!iequals(field.name, "te")) continue;
    for_each_list_element(field.value, [&](std::string_view element) {
      // t-codings may carry parameters ("trailers" never does, but a weight may follow).
      std::string_view coding = trim(element.substr(0, element.find(';')));
      accepts = accepts || iequals(coding, "trailers");
    });
  }
  return accepts;
}

void write_last_chunk(std::string& out, const HeaderList& trailers, std::span<const std::string> omit_fields) {
  out.append("0\r\n");
  for (HeaderField field : trailers) {
    if (is_hop_by_hop(field.name) || is_forwarding_field(field.name) || iequals(field.name, "host") ||
        is_listed(field.name, omit_fields)) {
      continue;
    }
    append_field(out, field.name, field.value);
  }
  out.append("\r\n");
}

void write_client_response_head(std::string& out, const ClientResponse& response) {
  out.append(response.client_is_http10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  append_number(out, static_cast<std::uint64_t>(response.status));
  out.push_back(' ');
  out.append(reason_phrase(response.status));
  out.append("\r\n");
  bool has_request_id = false;
  for (HeaderField field : response.headers) {
    has_request_id = has_request_id || iequals(field.name, "x-request-id");
    append_field(out, field.name, field.value);
  }
  if (!has_request_id && !response.request_id.empty()) append_field(out, "X-Request-Id", response.request_id);
  append_framing(out, response.framing, response.content_length);
  if (response.upgrade) {
    out.append("Connection: upgrade\r\n");
  } else if (!response.keep_alive) {
    out.append("Connection: close\r\n");
  } else if (response.client_is_http10) {
    out.append("Connection: keep-alive\r\n");
  }
  out.append("\r\n");
}

bool status_has_no_body(int status) noexcept {
  return (status >= 100 && status < 200) || status == 204 || status == 304;
}

}  // namespace arbiter
