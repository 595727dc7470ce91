#include "proxy/http/forwarding.h"

#include <algorithm>
#include <array>
#include <charconv>

#include "proxy/http/problem.h"

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

// Whether `name` is one of `names`, ignoring case (a Connection field's options, omit_fields).
template <class Names>
bool is_listed(std::string_view name, const Names& names) {
  return std::any_of(std::begin(names), std::end(names), [name](std::string_view listed) { return iequals(name, listed); });
}

// The options of a message's Connection fields that name a field not hop-by-hop anyway: views
// into `headers`. The usual `Connection: keep-alive` (or `upgrade`, `TE`) gives none, so the
// vector allocates only for a message that names other fields.
std::vector<std::string_view> connection_options(const HeaderList& headers) {
  std::vector<std::string_view> options;
  for (HeaderField field : headers) {
    if (iequals(field.name, "connection")) {
      for_each_list_element(field.value, [&](std::string_view option) {
        if (!is_listed(option, kHopByHop)) options.push_back(option);
      });
    }
  }
  return options;
}

// The one test of "this field ends at this hop" (RFC 9110 section 7.6.1): a fixed hop-by-hop
// field or one a Connection option names, except Upgrade when `keep_upgrade` (a tunnelled
// switch of protocols, where Arbiter itself sends `Connection: upgrade`).
bool ends_at_this_hop(std::string_view name, std::span<const std::string_view> connection_options,
                      bool keep_upgrade) {
  if (keep_upgrade && iequals(name, "upgrade")) return false;
  return is_listed(name, kHopByHop) || is_listed(name, connection_options);
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
  std::vector<std::string_view> options = connection_options(headers);
  headers.remove_if([&](std::string_view name) { return ends_at_this_hop(name, options, keep_upgrade); });
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

  std::vector<std::string_view> options = connection_options(request.headers);
  auto crosses = [&](std::string_view name) {
    return !ends_at_this_hop(name, options, request.upgrade) && !is_listed(name, request.omit_fields);
  };
  // Opens the list field `name` with the values of the client's `name` fields (when `believed`),
  // each followed by ", ", for this hop to end it with its own element. Views, no copies: the
  // values go straight from the client's head to `out`.
  auto open_list_field = [&](std::string_view name, bool believed) {
    out.append(name);
    out.append(": ");
    if (!believed || !crosses(name)) return;
    for (HeaderField field : request.headers) {
      if (!iequals(field.name, name) || without_ows(field.value).empty()) continue;
      out.append(without_ows(field.value));
      out.append(", ");
    }
  };

  bool has_host = false;
  std::string_view host, forwarded_proto, forwarded_host;
  for (HeaderField field : request.headers) {
    if (!crosses(field.name)) continue;
    if (is_forwarding_field(field.name)) {
      // X-Forwarded-For, Forwarded and Via are written below; X-Real-IP, X-Request-Id and Expect
      // are the proxy's to send.
      if (iequals(field.name, "x-forwarded-proto") && request.peer_is_trusted_proxy) {
        forwarded_proto = without_ows(field.value);
      } else if (iequals(field.name, "x-forwarded-host") && request.peer_is_trusted_proxy) {
        forwarded_host = without_ows(field.value);
      }
      continue;
    }
    if (iequals(field.name, "host")) {
      has_host = true;
      host = field.value;
    }
    append_field(out, field.name, field.value);
  }
  if (!has_host) append_field(out, "Host", request.upstream_authority);
  // TE is hop-by-hop: only what Arbiter itself can relay is asked of the upstream. One
  // Connection field names this hop's options.
  bool ask_trailers = accepts_trailers(request.headers);
  if (ask_trailers) append_field(out, "TE", "trailers");
  if (ask_trailers || request.upgrade) {
    append_field(out, "Connection", ask_trailers && request.upgrade ? "TE, upgrade" : ask_trailers ? "TE" : "upgrade");
  }

  open_list_field("X-Forwarded-For", request.peer_is_trusted_proxy);
  out.append(request.peer_address);
  out.append("\r\n");
  append_field(out, "X-Forwarded-Proto", forwarded_proto.empty() ? std::string_view("http") : forwarded_proto);
  if (forwarded_host.empty() && has_host) forwarded_host = host;
  if (!forwarded_host.empty()) append_field(out, "X-Forwarded-Host", forwarded_host);
  open_list_field("Forwarded", request.peer_is_trusted_proxy);
  append_forwarded_element(out, request.peer_address, has_host, host);
  out.append("\r\n");
  append_field(out, "X-Real-IP", request.believed_client.empty() ? request.peer_address : request.believed_client);
  open_list_field("Via", true);
  out.append("1.1 arbiter\r\n");
  append_field(out, "X-Request-Id", request.request_id);

  append_framing(out, request.framing, request.content_length);
  out.append("\r\n");
}

void append_forwarded_element(std::string& out, std::string_view for_address, bool has_host, std::string_view host) {
  out.append("for=");
  if (for_address.empty()) {
    out.append("unknown");  // RFC 7239 section 6.3
  } else if (for_address.find(':') != std::string_view::npos) {
    out.append("\"[");
    out.append(for_address);
    out.append("]\"");
  } else {
    out.append(for_address);
  }
  out.append(";proto=http");
  if (has_host) {
    out.append(";host=");
    append_token_or_quoted(out, without_ows(host));
  }
}

bool accepts_trailers(const HeaderList& request_headers) {
  bool accepts = false;
  for (HeaderField field : request_headers) {
    if (!iequals(field.name, "te")) continue;
    for_each_list_element(field.value, [&](std::string_view element) {
      // t-codings may carry parameters ("trailers" never does, but a weight may follow).
      std::string_view coding = without_ows(element.substr(0, element.find(';')));
      accepts = accepts || iequals(coding, "trailers");
    });
  }
  return accepts;
}

void write_last_chunk(std::string& out, const HeaderList& trailers, std::span<const std::string> omit_fields) {
  out.append("0\r\n");
  for (HeaderField field : trailers) {
    if (ends_at_this_hop(field.name, {}, false) || is_forwarding_field(field.name) || iequals(field.name, "host") ||
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

bool is_idempotent_method(std::string_view method) noexcept {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" || method == "OPTIONS" ||
         method == "TRACE";
}

}  // namespace arbiter
