#include <arpa/inet.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "tests/support/harness.h"

namespace harness {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; };
    if (lower(static_cast<unsigned char>(a[i])) != lower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

bool has_header(const HeaderPairs& headers, std::string_view name) {
  for (const auto& field : headers) {
    if (iequals(field.first, name)) return true;
  }
  return false;
}

// What the llhttp callbacks build while one response is parsed.
struct ResponseParse {
  HttpResponse response;
  std::string header_name;
  std::string header_value;
  bool head_request = false;
  bool complete = false;

  static ResponseParse& of(llhttp_t* parser) { return *static_cast<ResponseParse*>(parser->data); }

  static const llhttp_settings_t& settings() {
    static const llhttp_settings_t settings = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_status = [](llhttp_t* p, const char* at, std::size_t n) { return append(of(p).response.reason, at, n); };
      s.on_header_field = [](llhttp_t* p, const char* at, std::size_t n) { return append(of(p).header_name, at, n); };
      s.on_header_value = [](llhttp_t* p, const char* at, std::size_t n) { return append(of(p).header_value, at, n); };
      s.on_header_value_complete = [](llhttp_t* p) {
        ResponseParse& parse = of(p);
        parse.response.headers.emplace_back(std::move(parse.header_name), std::move(parse.header_value));
        parse.header_name.clear();
        parse.header_value.clear();
        return 0;
      };
      s.on_headers_complete = [](llhttp_t* p) {
        ResponseParse& parse = of(p);
        parse.response.status = llhttp_get_status_code(p);
        parse.response.http_major = llhttp_get_http_major(p);
        parse.response.http_minor = llhttp_get_http_minor(p);
        return parse.head_request ? 1 : 0;  // 1: this response has no body
      };
      s.on_body = [](llhttp_t* p, const char* at, std::size_t n) { return append(of(p).response.body, at, n); };
      s.on_message_complete = [](llhttp_t* p) {
        ResponseParse& parse = of(p);
        parse.response.keep_alive = llhttp_should_keep_alive(p) != 0;
        parse.complete = true;
        // Stop right after this response: what follows belongs to the next read_response.
        return static_cast<int>(HPE_PAUSED);
      };
      return s;
    }();
    return settings;
  }

  static int append(std::string& destination, const char* at, std::size_t length) {
    destination.append(at, length);
    return 0;
  }
};

bool is_interim(int status) { return status >= 100 && status < 200 && status != 101; }

}  // namespace

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [field_name, value] : headers) {
    if (iequals(field_name, name)) return value;
  }
  return std::nullopt;
}

std::size_t HttpResponse::header_count(std::string_view name) const {
  std::size_t count = 0;
  for (const auto& field : headers) count += iequals(field.first, name) ? 1 : 0;
  return count;
}

HttpResponse require(std::optional<HttpResponse> response, const HttpClient& client) {
  if (!response) throw std::runtime_error("no response: " + client.last_error());
  return std::move(*response);
}

std::string format_request(std::string_view method, std::string_view target, std::uint16_t port,
                           const HeaderPairs& headers, std::string_view body) {
  std::string request;
  request.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  if (!has_header(headers, "Host")) request.append("Host: 127.0.0.1:").append(std::to_string(port)).append("\r\n");
  for (const auto& [name, value] : headers) request.append(name).append(": ").append(value).append("\r\n");
  const bool framed = has_header(headers, "Content-Length") || has_header(headers, "Transfer-Encoding");
  const bool method_expects_body = method == "POST" || method == "PUT" || method == "PATCH";
  if (!framed && (!body.empty() || method_expects_body)) {
    request.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  request.append("\r\n").append(body);
  return request;
}

HttpClient::HttpClient(std::uint16_t port, Milliseconds timeout) : port_(port), timeout_(timeout) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    last_error_ = std::string("socket: ") + std::strerror(errno);
    return;
  }
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  // SO_SNDTIMEO also bounds connect().
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    last_error_ = "connect to 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno);
    close();
  }
}

int listen_on_loopback(std::uint16_t& port, std::string_view owner) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(fd, 64) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string(owner) + ": cannot listen on 127.0.0.1");
  }
  port = ntohs(address.sin_port);
  return fd;
}

HttpClient::~HttpClient() { close(); }

HttpClient::HttpClient(HttpClient&& other) noexcept
    : port_(other.port_),
      timeout_(other.timeout_),
      fd_(std::exchange(other.fd_, -1)),
      peer_closed_(other.peer_closed_),
      peer_reset_(other.peer_reset_),
      unparsed_(std::move(other.unparsed_)),
      last_error_(std::move(other.last_error_)) {}

void HttpClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool HttpClient::send_raw(std::string_view bytes) {
  if (fd_ < 0) {
    last_error_ = "send on a connection that is not open";
    return false;
  }
  while (!bytes.empty()) {
    const ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0) {
      last_error_ = std::string("send: ") + std::strerror(errno);
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(sent));
  }
  return true;
}

long HttpClient::receive_some(std::chrono::steady_clock::time_point deadline) {
  if (fd_ < 0) {
    last_error_ = "receive on a connection that is not open";
    return -1;
  }
  if (peer_closed_) return 0;
  const auto remaining = std::chrono::duration_cast<Milliseconds>(deadline - std::chrono::steady_clock::now());
  pollfd readable{fd_, POLLIN, 0};
  const int ready = ::poll(&readable, 1, static_cast<int>(std::max<Milliseconds::rep>(remaining.count(), 0)));
  if (ready == 0) {
    last_error_ = "timed out waiting for data from 127.0.0.1:" + std::to_string(port_);
    return -1;
  }
  char buffer[65536];
  ssize_t received;
  do {
    received = ::recv(fd_, buffer, sizeof buffer, 0);
  } while (received < 0 && errno == EINTR);
  if (received > 0) {
    unparsed_.append(buffer, static_cast<std::size_t>(received));
    return received;
  }
  if (received == 0 || errno == ECONNRESET) {
    peer_closed_ = true;
    peer_reset_ = received < 0;
    return 0;
  }
  last_error_ = std::string("recv: ") + std::strerror(errno);
  return -1;
}

std::optional<HttpResponse> HttpClient::read_response(bool head_request) {
  ResponseParse parse;
  parse.head_request = head_request;
  llhttp_t parser;
  llhttp_init(&parser, HTTP_RESPONSE, &ResponseParse::settings());
  parser.data = &parse;

  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  std::size_t parsed = 0;  // bytes of unparsed_ already given to the parser
  while (true) {
    if (parsed < unparsed_.size()) {
      const char* start = unparsed_.data() + parsed;
      const llhttp_errno_t error = llhttp_execute(&parser, start, unparsed_.size() - parsed);
      if (error == HPE_PAUSED) {
        unparsed_.erase(0, parsed + static_cast<std::size_t>(llhttp_get_error_pos(&parser) - start));
        return std::move(parse.response);
      }
      if (error != HPE_OK) {
        last_error_ = std::string("malformed response: ") + llhttp_errno_name(error) + ": " +
                      llhttp_get_error_reason(&parser);
        unparsed_.clear();
        return std::nullopt;
      }
      parsed = unparsed_.size();
    }
    if (peer_reset_) {
      last_error_ = "connection reset by peer";
      return std::nullopt;
    }
    if (peer_closed_) {
      // A response without Content-Length or chunking ends where the connection does.
      llhttp_finish(&parser);
      unparsed_.clear();
      if (parse.complete) return std::move(parse.response);
      last_error_ = parsed == 0 ? "connection closed before a response" : "connection closed in the middle of a response";
      return std::nullopt;
    }
    if (receive_some(deadline) < 0) return std::nullopt;
  }
}

std::optional<HttpResponse> HttpClient::request(std::string_view method, std::string_view target,
                                                const HeaderPairs& headers, std::string_view body) {
  if (!send_raw(format_request(method, target, port_, headers, body))) return std::nullopt;
  while (true) {
    auto response = read_response(method == "HEAD");
    if (!response || !is_interim(response->status)) return response;
  }
}

bool HttpClient::is_closed_by_peer(Milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const long received = receive_some(deadline);
    if (received == 0) return true;
    if (received < 0) return false;
  }
}

}  // namespace harness
