#include "http_server.h"

#include <llhttp.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <stdexcept>

namespace legacy {

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; };
    if (lower(static_cast<unsigned char>(a[i])) != lower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

std::optional<std::string_view> Request::header(std::string_view name) const {
  for (const auto& [field_name, value] : headers) {
    if (iequals(field_name, name)) return std::string_view(value);
  }
  return std::nullopt;
}

std::optional<std::string_view> Request::query_parameter(std::string_view name) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    const std::size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    const std::size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
  }
  return std::nullopt;
}

Reply Reply::json(int status, std::string body) {
  Response response;
  response.status = status;
  response.headers.emplace_back("Content-Type", "application/json");
  response.body = std::move(body);
  return respond(std::move(response));
}

Reply error_reply(int status, std::string_view message) {
  const nlohmann::json body = {{"error", message.empty() ? std::string(reason_phrase(status)) : std::string(message)}};
  return Reply::json(status, body.dump());
}

const char* reason_phrase(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

namespace {

constexpr std::size_t kReadBufferSize = 64u << 10;
constexpr std::size_t kResponseChunkSize = 16u << 10;
// Above this many unsent response bytes the connection stops taking requests until the
// client reads, so a pipelining client that never reads cannot grow our memory unbounded.
constexpr std::size_t kWriteHighWater = 4u << 20;
// How long a closing connection keeps draining what the client still sends: closing a
// socket with unread input makes the kernel send RST, which can destroy the last response
// before the client has read it.
constexpr std::uint64_t kLingerMilliseconds = 1000;
// Raw bytes followed by a reset: the reset waits this long, so the peer has read the bytes
// (an RST can make the peer's kernel drop data it has not read yet).
constexpr std::uint64_t kResetAfterBytesMilliseconds = 50;

// One loop, one thread: every read callback consumes the buffer before the next allocation.
char g_read_buffer[kReadBufferSize];

bool status_has_body(int status) { return status >= 200 && status != 204 && status != 304; }

void append_chunked(std::string& out, std::string_view body) {
  char size_line[32];
  for (std::size_t offset = 0; offset < body.size(); offset += kResponseChunkSize) {
    const std::string_view chunk = body.substr(offset, kResponseChunkSize);
    const int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", chunk.size());
    out.append(size_line, static_cast<std::size_t>(n));
    out.append(chunk);
    out.append("\r\n");
  }
  out.append("0\r\n\r\n");
}

struct WriteRequest {
  uv_write_t request{};
  std::string bytes;
};

// How a request must be answered, beyond what the application decides.
struct Exchange {
  bool head_request = false;
  bool client_understands_chunked = true;  // HTTP/1.1 or later
  bool keep_alive = true;
};

class Connection {
 public:
  explicit Connection(HttpServer& server) : server_(server), id_(++server.counts().accepted) {
    server.counts().open.insert(id_);
    uv_tcp_init(server.loop(), &tcp_);
    uv_timer_init(server.loop(), &timer_);
    tcp_.data = this;
    timer_.data = this;
    llhttp_init(&parser_, HTTP_REQUEST, &parser_settings());
    parser_.data = this;
  }

  void start(uv_stream_t* listener) {
    if (uv_accept(listener, stream()) != 0) {
      close_now();
      return;
    }
    uv_tcp_nodelay(&tcp_, 1);
    update_reading();
  }

 private:
  enum class Phase { Open, Closing, Closed };

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
  uv_handle_t* tcp_handle() { return reinterpret_cast<uv_handle_t*>(&tcp_); }
  static Connection* of(llhttp_t* parser) { return static_cast<Connection*>(parser->data); }

  static const llhttp_settings_t& parser_settings() {
    static const llhttp_settings_t settings = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_message_begin = [](llhttp_t* p) { return of(p)->on_message_begin(); };
      s.on_url = [](llhttp_t* p, const char* at, std::size_t n) { return of(p)->on_head_piece(of(p)->current_.target, at, n); };
      s.on_header_field = [](llhttp_t* p, const char* at, std::size_t n) { return of(p)->on_head_piece(of(p)->header_name_, at, n); };
      s.on_header_value = [](llhttp_t* p, const char* at, std::size_t n) { return of(p)->on_head_piece(of(p)->header_value_, at, n); };
      s.on_header_value_complete = [](llhttp_t* p) { return of(p)->on_header_complete(); };
      s.on_headers_complete = [](llhttp_t* p) { return of(p)->on_headers_complete(); };
      s.on_body = [](llhttp_t* p, const char* at, std::size_t n) { return of(p)->on_body(at, n); };
      s.on_message_complete = [](llhttp_t* p) { return of(p)->on_message_complete(); };
      return s;
    }();
    return settings;
  }

  // --- parsing -------------------------------------------------------------------------

  int on_message_begin() {
    current_ = Request{};
    current_.connection = id_;
    header_name_.clear();
    header_value_.clear();
    head_bytes_ = 0;
    return HPE_OK;
  }

  int on_head_piece(std::string& destination, const char* at, std::size_t length) {
    head_bytes_ += length;
    if (head_bytes_ > server_.limits().max_head_bytes) {
      rejection_status_ = 431;
      return HPE_USER;
    }
    destination.append(at, length);
    return HPE_OK;
  }

  int on_header_complete() {
    current_.headers.emplace_back(std::move(header_name_), std::move(header_value_));
    header_name_.clear();
    header_value_.clear();
    return HPE_OK;
  }

  int on_headers_complete() {
    current_.method = llhttp_method_name(static_cast<llhttp_method_t>(llhttp_get_method(&parser_)));
    current_.http_major = llhttp_get_http_major(&parser_);
    current_.http_minor = llhttp_get_http_minor(&parser_);
    const std::size_t question = current_.target.find('?');
    current_.path = current_.target.substr(0, question);
    if (question != std::string::npos) current_.query = current_.target.substr(question + 1);

    const bool has_length = (parser_.flags & F_CONTENT_LENGTH) != 0;
    if (has_length && parser_.content_length > server_.limits().max_body_bytes) {
      rejection_status_ = 413;
      return -1;
    }
    const bool expects_body = (parser_.flags & F_CHUNKED) != 0 || (has_length && parser_.content_length > 0);
    const auto expect = current_.header("Expect");
    if (expects_body && expect && iequals(*expect, "100-continue") && current_.http_minor >= 1) {
      write("HTTP/1.1 100 Continue\r\n\r\n");
    }
    if (has_length) current_.body.reserve(parser_.content_length);
    return HPE_OK;
  }

  int on_body(const char* at, std::size_t length) {
    if (current_.body.size() + length > server_.limits().max_body_bytes) {
      rejection_status_ = 413;
      return HPE_USER;
    }
    current_.body.append(at, length);
    return HPE_OK;
  }

  int on_message_complete() {
    exchange_.head_request = current_.method == "HEAD";
    exchange_.client_understands_chunked = current_.http_major > 1 || current_.http_minor >= 1;
    // An upgrade is never granted, and after one llhttp parses nothing more.
    exchange_.keep_alive = llhttp_should_keep_alive(&parser_) && !llhttp_get_upgrade(&parser_);
    // Pausing hands one request at a time to the application, which is what keeps
    // pipelined answers in order even when one of them is delayed.
    return HPE_PAUSED;
  }

  bool accepting_requests() const {
    return phase_ == Phase::Open && !awaiting_delayed_reply_ && !waiting_for_drain_ && !hanging_;
  }

  void process_input() {
    std::size_t consumed = 0;
    while (accepting_requests() && consumed < input_.size()) {
      const char* start = input_.data() + consumed;
      const llhttp_errno_t error = llhttp_execute(&parser_, start, input_.size() - consumed);
      if (error == HPE_OK) {
        consumed = input_.size();
      } else if (error == HPE_PAUSED) {
        consumed += static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - start);
        llhttp_resume(&parser_);
        handle_request();
      } else {
        reject(rejection_status_ != 0 ? rejection_status_ : 400);
      }
    }
    if (phase_ == Phase::Open) {
      input_.erase(0, consumed);
    } else {
      input_.clear();
    }
    update_reading();
  }

  // --- answering -----------------------------------------------------------------------

  void handle_request() {
    const Request request = std::move(current_);
    current_ = Request{};
    Reply reply = server_.handler()(request);
    switch (reply.kind) {
      case Reply::Kind::Respond:
        if (reply.delay.count() > 0) {
          awaiting_delayed_reply_ = true;
          delayed_response_ = std::move(reply.response);
          // The loop's clock stops while a callback runs; without this the delay would be
          // measured from the start of the iteration and could end early.
          uv_update_time(server_.loop());
          uv_timer_start(&timer_, on_delay_elapsed, static_cast<std::uint64_t>(reply.delay.count()), 0);
          return;
        }
        send_response(reply.response);
        break;
      case Reply::Kind::Close:
        close_gracefully();
        break;
      case Reply::Kind::Reset:
        reset();
        break;
      case Reply::Kind::RawBytes:
        if (!reply.raw_bytes.empty()) write(std::move(reply.raw_bytes));
        after_raw_bytes(reply.after);
        break;
    }
  }

  void after_raw_bytes(Reply::After after) {
    switch (after) {
      case Reply::After::Close:
        close_gracefully();
        break;
      case Reply::After::Reset:
        hanging_ = true;
        uv_update_time(server_.loop());
        uv_timer_start(&timer_, [](uv_timer_t* timer) { static_cast<Connection*>(timer->data)->reset(); },
                       kResetAfterBytesMilliseconds, 0);
        break;
      case Reply::After::Hang:
        // Reads on (and discards), so that the peer closing is noticed and the connection freed.
        hanging_ = true;
        break;
      case Reply::After::KeepServing:
        break;
    }
  }

  static void on_delay_elapsed(uv_timer_t* timer) {
    auto* self = static_cast<Connection*>(timer->data);
    self->awaiting_delayed_reply_ = false;
    self->send_response(self->delayed_response_);
    self->delayed_response_ = Response{};
    self->process_input();
  }

  void send_response(const Response& response) {
    const bool chunked = response.chunked && exchange_.client_understands_chunked;
    const bool has_body = status_has_body(response.status);
    std::string out;
    out.reserve(256 + response.body.size() + (chunked ? response.body.size() / kResponseChunkSize * 12 + 16 : 0));
    out.append("HTTP/1.1 ").append(std::to_string(response.status)).append(" ").append(reason_phrase(response.status)).append("\r\n");
    for (const auto& [name, value] : response.headers) out.append(name).append(": ").append(value).append("\r\n");
    if (has_body && chunked) {
      out.append("Transfer-Encoding: chunked\r\n");
    } else if (has_body) {
      out.append("Content-Length: ").append(std::to_string(response.body.size())).append("\r\n");
    }
    if (!exchange_.keep_alive) {
      out.append("Connection: close\r\n");
    } else if (!exchange_.client_understands_chunked) {
      out.append("Connection: keep-alive\r\n");  // an HTTP/1.0 client asked for it
    }
    out.append("\r\n");
    if (has_body && !exchange_.head_request) {
      if (chunked) {
        append_chunked(out, response.body);
      } else {
        out.append(response.body);
      }
    }
    write(std::move(out));
    if (!exchange_.keep_alive) {
      close_gracefully();
    } else if (uv_stream_get_write_queue_size(stream()) > kWriteHighWater) {
      waiting_for_drain_ = true;
    }
  }

  // The request cannot be framed (or is too large to take), so nothing after it can be
  // trusted to start a new request: answer and close.
  void reject(int status) {
    exchange_ = Exchange{.head_request = false, .client_understands_chunked = true, .keep_alive = false};
    send_response(error_reply(status).response);
  }

  void write(std::string bytes) {
    if (phase_ != Phase::Open) return;
    auto* request = new WriteRequest;
    request->bytes = std::move(bytes);
    request->request.data = request;
    const uv_buf_t buffer = uv_buf_init(request->bytes.data(), static_cast<unsigned>(request->bytes.size()));
    if (uv_write(&request->request, stream(), &buffer, 1, on_written) != 0) {
      delete request;
      close_now();
    }
  }

  static void on_written(uv_write_t* request, int status) {
    std::unique_ptr<WriteRequest> finished(static_cast<WriteRequest*>(request->data));
    auto* self = static_cast<Connection*>(request->handle->data);
    if (status < 0) {
      self->close_now();
      return;
    }
    if (self->waiting_for_drain_ && uv_stream_get_write_queue_size(self->stream()) < kWriteHighWater / 2) {
      self->waiting_for_drain_ = false;
      self->process_input();
    }
  }

  // --- reading and closing -------------------------------------------------------------

  void update_reading() {
    const bool want = !peer_eof_ && (phase_ == Phase::Closing || hanging_ || accepting_requests());
    if (want && !reading_) {
      reading_ = uv_read_start(stream(), on_alloc, on_read) == 0;
    } else if (!want && reading_ && phase_ != Phase::Closed) {
      uv_read_stop(stream());
      reading_ = false;
    }
  }

  static void on_alloc(uv_handle_t*, std::size_t, uv_buf_t* buffer) {
    *buffer = uv_buf_init(g_read_buffer, sizeof g_read_buffer);
  }

  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buffer) {
    auto* self = static_cast<Connection*>(stream->data);
    if (nread > 0) {
      if (self->phase_ == Phase::Open && !self->hanging_) {
        self->input_.append(buffer->base, static_cast<std::size_t>(nread));
        self->process_input();
      }
      return;  // a closing connection discards what it drains
    }
    if (nread == UV_EOF) {
      self->peer_eof_ = true;
      self->reading_ = false;
      if (self->phase_ == Phase::Open) {
        self->close_gracefully();
      } else if (self->shutdown_done_) {
        self->close_now();
      }
    } else if (nread < 0) {
      self->close_now();
    }
  }

  // Sends what is queued, then FIN; drains the client's input for a while before closing.
  void close_gracefully() {
    if (phase_ != Phase::Open) return;
    phase_ = Phase::Closing;
    uv_timer_stop(&timer_);
    if (uv_shutdown(&shutdown_request_, stream(), on_shutdown) != 0) {
      close_now();
      return;
    }
    update_reading();
  }

  static void on_shutdown(uv_shutdown_t* request, int status) {
    auto* self = static_cast<Connection*>(request->handle->data);
    self->shutdown_done_ = true;
    if (self->phase_ == Phase::Closed) return;
    if (status < 0 || self->peer_eof_) {
      self->close_now();
      return;
    }
    uv_timer_start(&self->timer_, [](uv_timer_t* timer) { static_cast<Connection*>(timer->data)->close_now(); },
                   kLingerMilliseconds, 0);
  }

  void reset() {
    if (phase_ == Phase::Closed) return;
    phase_ = Phase::Closed;
    if (uv_tcp_close_reset(&tcp_, on_handle_closed) != 0) uv_close(tcp_handle(), on_handle_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_handle_closed);
  }

  void close_now() {
    if (phase_ == Phase::Closed) return;
    phase_ = Phase::Closed;
    uv_close(tcp_handle(), on_handle_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_handle_closed);
  }

  static void on_handle_closed(uv_handle_t* handle) {
    auto* self = static_cast<Connection*>(handle->data);
    if (--self->open_handles_ == 0) {
      self->server_.counts().open.erase(self->id_);
      delete self;
    }
  }

  HttpServer& server_;
  std::uint64_t id_;
  uv_tcp_t tcp_{};
  uv_timer_t timer_{};  // the delayed reply or a pending reset while open, the linger time while closing
  uv_shutdown_t shutdown_request_{};
  int open_handles_ = 2;
  Phase phase_ = Phase::Open;
  bool reading_ = false;
  bool peer_eof_ = false;
  bool shutdown_done_ = false;
  bool awaiting_delayed_reply_ = false;
  bool waiting_for_drain_ = false;
  bool hanging_ = false;  // answers nothing more (Reply::After::Hang, or a reset pending)

  llhttp_t parser_{};
  std::string input_;  // received but not yet parsed (only while a reply is pending)
  Request current_;
  std::string header_name_;
  std::string header_value_;
  std::size_t head_bytes_ = 0;
  int rejection_status_ = 0;
  Exchange exchange_;
  Response delayed_response_;
};

}  // namespace

HttpServer::HttpServer(uv_loop_t* loop, RequestHandler handler, ServerLimits limits)
    : loop_(loop), handler_(std::move(handler)), limits_(limits) {}

std::string HttpServer::listen(const std::string& host, std::uint16_t port) {
  sockaddr_storage address{};
  const bool ipv6 = host.find(':') != std::string::npos;
  const int parsed = ipv6 ? uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&address))
                          : uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&address));
  if (parsed != 0) throw std::runtime_error("not a numeric address: " + host);
  uv_tcp_init(loop_, &listener_);
  listener_.data = this;
  int result = uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&address), 0);
  if (result == 0) result = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 1024, on_connection);
  if (result != 0) throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) + ": " + uv_strerror(result));

  sockaddr_storage bound{};
  int length = sizeof bound;
  uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&bound), &length);
  char text[64] = {};
  if (bound.ss_family == AF_INET6) {
    uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(&bound), text, sizeof text);
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port));
  }
  uv_ip4_name(reinterpret_cast<const sockaddr_in*>(&bound), text, sizeof text);
  return std::string(text) + ":" + std::to_string(ntohs(reinterpret_cast<const sockaddr_in*>(&bound)->sin_port));
}

void HttpServer::on_connection(uv_stream_t* listener, int status) {
  if (status < 0) return;
  auto* server = static_cast<HttpServer*>(listener->data);
  (new Connection(*server))->start(listener);
}

}  // namespace legacy
