// Conditional requests through the real binary (RFC 9110 sections 13 and 15; issue #12 items
// 7-12): the backends here are scripted in the test, since each reproduces one behaviour of a
// real server (a 304 to If-Modified-Since, a 412 to tags it never made, gzip variants, Apache's
// weak tag turning strong, a 201 with Location, an endless event stream).

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/proxy_fixture.h"

namespace {

using harness::ArbiterProcess;
using harness::ConfigOptions;
using harness::HeaderPairs;
using harness::HttpResponse;
using nlohmann::json;
using namespace std::chrono_literals;

bool same_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

struct ScriptedRequest {
  std::string method;
  std::string target;
  HeaderPairs headers;
  std::string body;

  std::optional<std::string> header(std::string_view name) const {
    for (const auto& [field, value] : headers) {
      if (same_name(field, name)) return value;
    }
    return std::nullopt;
  }
};

// What a scripted backend sends: a status, fields and a body (Content-Length and
// Connection: close are added), or, with `stream`, a chunked head after which stream(send)
// writes chunks until it returns.
struct ScriptedResponse {
  int status = 200;
  HeaderPairs headers;
  std::string body;
  std::function<void(const std::function<bool(std::string_view)>&)> stream;
};

// A backend on a loopback port that answers each connection's one request with handler(request)
// and closes it. Each connection has its own thread, so a stream does not block the others.
class ScriptedBackend {
 public:
  using Handler = std::function<ScriptedResponse(const ScriptedRequest&)>;

  explicit ScriptedBackend(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = harness::listen_on_loopback(port_, "ScriptedBackend");
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~ScriptedBackend() {
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    acceptor_.join();
    for (std::thread& connection : connections_) connection.join();
    ::close(listen_fd_);
  }
  std::uint16_t port() const { return port_; }

  // Every request received so far (fetches Arbiter makes included).
  std::vector<ScriptedRequest> received() {
    std::lock_guard lock(mutex_);
    return received_;
  }

 private:
  void accept_loop() {
    for (;;) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      connections_.emplace_back([this, fd] { serve(fd); });
    }
  }

  void serve(int fd) {
    timeval timeout{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    std::string input;
    char buffer[4096];
    while (input.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) {
        ::close(fd);
        return;
      }
      input.append(buffer, static_cast<std::size_t>(n));
    }
    ScriptedRequest request;
    std::size_t head_end = input.find("\r\n\r\n");
    std::string_view head(input.data(), head_end);
    std::size_t line_end = head.find("\r\n");
    std::string_view line = head.substr(0, line_end);
    request.method = std::string(line.substr(0, line.find(' ')));
    std::size_t target_start = line.find(' ') + 1;
    request.target = std::string(line.substr(target_start, line.find(' ', target_start) - target_start));
    std::size_t content_length = 0;
    while (line_end != std::string_view::npos) {
      std::size_t next = head.find("\r\n", line_end + 2);
      std::string_view field = head.substr(line_end + 2, next == std::string_view::npos ? next : next - line_end - 2);
      std::size_t colon = field.find(':');
      std::string name(field.substr(0, colon));
      std::string value(field.substr(colon + 1));
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      if (same_name(name, "content-length")) content_length = std::stoul(value);
      request.headers.emplace_back(std::move(name), std::move(value));
      line_end = next;
    }
    request.body = input.substr(head_end + 4);
    while (request.body.size() < content_length) {
      ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      request.body.append(buffer, static_cast<std::size_t>(n));
    }
    {
      std::lock_guard lock(mutex_);
      received_.push_back(request);
    }
    ScriptedResponse response = handler_(request);
    std::string out = "HTTP/1.1 " + std::to_string(response.status) + " X\r\nConnection: close\r\n";
    for (const auto& [name, value] : response.headers) out += name + ": " + value + "\r\n";
    auto send_all = [fd](std::string_view bytes) {
      return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
    };
    if (response.stream) {
      out += "Transfer-Encoding: chunked\r\n\r\n";
      if (send_all(out)) {
        response.stream([&](std::string_view chunk) {
          char size[24];
          std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
          return send_all(size) && send_all(chunk) && send_all("\r\n");
        });
        send_all("0\r\n\r\n");
      }
    } else {
      bool bodiless = response.status == 304 || response.status == 204 || request.method == "HEAD";
      if (!bodiless) out += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
      out += "\r\n";
      if (!bodiless) out += response.body;
      send_all(out);
    }
    ::shutdown(fd, SHUT_WR);
    while (::recv(fd, buffer, sizeof buffer, 0) > 0) {
    }
    ::close(fd);
  }

  Handler handler_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> connections_;  // joined at destruction; only the acceptor adds
  std::mutex mutex_;
  std::vector<ScriptedRequest> received_;
};

std::string gzip(std::string_view text) {
  z_stream stream{};
  deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&stream, text.size()) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  stream.avail_in = static_cast<uInt>(text.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

// One document the scripted backends serve and let PUT replace, guarded for their threads.
struct Document {
  std::mutex mutex;
  std::string body = R"({"id":1,"balance":10})";
  int version = 1;

  std::pair<std::string, int> read() {
    std::lock_guard lock(mutex);
    return {body, version};
  }
  void write(std::string text) {
    std::lock_guard lock(mutex);
    body = std::move(text);
    ++version;
  }
};

const std::string kDocRoute =
    "\n[[route]]\nname = \"doc\"\npath = \"/doc\"\nmethods = [\"GET\", \"HEAD\", \"PUT\", \"POST\"]\n"
    "upstream = \"legacy\"\n[route.etag]\n";

class ConditionalTest : public harness::ProxyFixture {
 protected:
  // Arbiter in front of `backend`, with route /doc behind [route.etag] plus `etag_keys`.
  void start_in_front_of(const ScriptedBackend& backend, std::string_view etag_keys = "",
                         std::string_view more_routes = "") {
    ConfigOptions options{.leading_routes = kDocRoute + std::string(etag_keys) + "\n" + std::string(more_routes)};
    arbiter_ = std::make_unique<ArbiterProcess>(harness::make_config(backend.port(), options));
  }
};

// ---- item 7 ----

TEST_F(ConditionalTest, IfModifiedSinceBesideIfNoneMatchNeverReachesTheBackend) {
  // A backend that answers If-Modified-Since from a date that never changes (second resolution,
  // or a clock that lags): it would tell a client with a stale tag that nothing changed.
  Document doc;
  ScriptedBackend backend([&](const ScriptedRequest& request) {
    if (request.header("If-Modified-Since")) return ScriptedResponse{304, {}, {}, {}};
    if (request.method == "PUT") {
      doc.write(request.body);
      return ScriptedResponse{204, {}, {}, {}};
    }
    return ScriptedResponse{200, {{"Last-Modified", "Tue, 01 Dec 2026 00:00:00 GMT"}}, doc.read().first, {}};
  });
  start_in_front_of(backend);
  HttpResponse first = send("GET", "/doc");
  ASSERT_EQ(first.status, 200);
  std::string stale = first.header("ETag").value_or("");
  ASSERT_EQ(send("PUT", "/doc", R"({"id":1,"balance":20})").status, 204);

  // Browsers send both validators; the tag is stale, so the answer is the new representation.
  HttpResponse revalidated = send("GET", "/doc", {}, {{"If-None-Match", stale},
                                                      {"If-Modified-Since", "Tue, 01 Dec 2026 00:00:00 GMT"}});
  EXPECT_EQ(revalidated.status, 200);
  EXPECT_EQ(revalidated.body, R"({"id":1,"balance":20})");
  std::string current = revalidated.header("ETag").value_or("");
  EXPECT_NE(current, stale);

  // If-Modified-Since alone is the backend's to answer: its 304 carries the current ETag.
  HttpResponse dated = send("GET", "/doc", {}, {{"If-Modified-Since", "Tue, 01 Dec 2026 00:00:00 GMT"}});
  EXPECT_EQ(dated.status, 304);
  EXPECT_EQ(dated.header("ETag").value_or(""), current);
}

// ---- item 8 ----

TEST_F(ConditionalTest, ReadPreconditionsAndRangesAreJudgedAgainstArbitersTags) {
  // A backend with tags of its own (weak, so Arbiter mints its own) that answers If-Match and
  // If-Range against them, and serves ranges itself.
  Document doc;
  ScriptedBackend backend([&](const ScriptedRequest& request) {
    std::string body = doc.read().first;
    if (request.header("If-Match")) return ScriptedResponse{412, {}, "backend: no such tag", {}};
    if (auto range = request.header("Range"); range && !request.header("If-Range")) {
      return ScriptedResponse{206, {{"ETag", "W/\"backend\""}, {"Content-Range", "bytes 0-3/" + std::to_string(body.size())}},
                              body.substr(0, 4), {}};
    }
    return ScriptedResponse{200, {{"ETag", "W/\"backend\""}}, body, {}};
  });
  start_in_front_of(backend);
  std::string body = doc.read().first;
  HttpResponse whole = send("GET", "/doc");
  ASSERT_EQ(whole.status, 200);
  std::string etag = whole.header("ETag").value_or("");
  ASSERT_FALSE(etag.empty());

  HttpResponse matching = send("GET", "/doc", {}, {{"If-Match", etag}});
  EXPECT_EQ(matching.status, 200);
  EXPECT_EQ(matching.body, body);
  HttpResponse stale = send("GET", "/doc", {}, {{"If-Match", "\"not-the-current-one\""}});
  EXPECT_EQ(stale.status, 412);
  EXPECT_EQ(stale.header("Content-Type").value_or(""), "application/problem+json");
  EXPECT_EQ(json::parse(stale.body)["type"], "urn:arbiter:problem:precondition-failed");
  EXPECT_EQ(stale.header("ETag").value_or(""), etag);

  // A 206 and the 200 of one representation carry one validator.
  HttpResponse part = send("GET", "/doc", {}, {{"Range", "bytes=0-3"}});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.body, body.substr(0, 4));
  EXPECT_EQ(part.header("ETag").value_or(""), etag);
  EXPECT_EQ(part.header("Content-Range").value_or(""), "bytes 0-3/" + std::to_string(body.size()));
  HttpResponse if_range = send("GET", "/doc", {}, {{"Range", "bytes=4-"}, {"If-Range", etag}});
  EXPECT_EQ(if_range.status, 206);
  EXPECT_EQ(if_range.body, body.substr(4));
  HttpResponse changed = send("GET", "/doc", {}, {{"Range", "bytes=0-3"}, {"If-Range", "\"older\""}});
  EXPECT_EQ(changed.status, 200);
  EXPECT_EQ(changed.body, body);
  EXPECT_EQ(changed.header("ETag").value_or(""), etag);

  for (const ScriptedRequest& request : backend.received()) {
    for (const char* field : {"If-Match", "If-Range", "Range"}) {
      EXPECT_FALSE(request.header(field).has_value()) << field << " reached the backend";
    }
  }
}

// ---- item 9 ----

// A backend that varies on Accept-Encoding, as nginx with gzip on does.
ScriptedBackend::Handler gzip_varying(Document& doc) {
  return [&doc](const ScriptedRequest& request) {
    if (request.method == "PUT") {
      doc.write(request.body);
      return ScriptedResponse{204, {}, {}, {}};
    }
    std::string body = doc.read().first;
    bool gzip_accepted = request.header("Accept-Encoding").value_or("").find("gzip") != std::string::npos;
    if (gzip_accepted) {
      return ScriptedResponse{200, {{"Content-Encoding", "gzip"}, {"Vary", "Accept-Encoding"}}, gzip(body), {}};
    }
    return ScriptedResponse{200, {{"Vary", "Accept-Encoding"}}, body, {}};
  };
}

TEST_F(ConditionalTest, AWriteNamingAnyRepresentationOfTheCurrentVersionPasses) {
  for (std::string verify : {"cache", "upstream"}) {
    SCOPED_TRACE(verify);
    Document doc;
    ScriptedBackend backend(gzip_varying(doc));
    start_in_front_of(backend, "verify = \"" + verify + "\"");
    HttpResponse gzipped = send("GET", "/doc", {}, {{"Accept-Encoding", "gzip"}});
    ASSERT_EQ(gzipped.header("Content-Encoding").value_or(""), "gzip");
    std::string gzip_tag = gzipped.header("ETag").value_or("");
    std::string identity_tag = send("GET", "/doc").header("ETag").value_or("");
    ASSERT_FALSE(gzip_tag.empty());
    ASSERT_NE(gzip_tag, identity_tag);

    // The gzip reader writes (its PUT negotiates no coding): no false 409.
    HttpResponse write = send("PUT", "/doc", R"({"id":1,"balance":30})", {{"If-Match", gzip_tag}});
    EXPECT_EQ(write.status, 204);
    // The identity reader's tag named the version before that write: refused.
    HttpResponse stale = send("PUT", "/doc", R"({"id":1,"balance":40})", {{"If-Match", identity_tag}});
    EXPECT_EQ(stale.status, 409);
    EXPECT_EQ(doc.read().first, R"({"id":1,"balance":30})");
  }
}

// ---- item 10 ----

TEST_F(ConditionalTest, ABackendTagTurningStrongKeepsTheVersion) {
  // Apache: for a second after a change its ETag is weak, then strong, for the same bytes.
  Document doc;
  std::atomic<bool> strong{false};
  ScriptedBackend backend([&](const ScriptedRequest& request) {
    if (request.method == "PUT") {
      doc.write(request.body);
      strong = false;
      return ScriptedResponse{204, {}, {}, {}};
    }
    auto [body, version] = doc.read();
    std::string tag = "\"" + std::to_string(version) + "-apache\"";
    return ScriptedResponse{200, {{"ETag", strong ? tag : "W/" + tag}}, body, {}};
  });
  for (std::string verify : {"upstream", "cache"}) {
    SCOPED_TRACE(verify);
    start_in_front_of(backend, "verify = \"" + verify + "\"");
    strong = false;
    std::string minted = send("GET", "/doc").header("ETag").value_or("");
    ASSERT_EQ(minted.size(), 34u) << minted;  // Arbiter's own: the backend's was weak
    strong = true;
    std::string apache = send("GET", "/doc").header("ETag").value_or("");
    ASSERT_NE(apache, minted);

    HttpResponse write = send("PUT", "/doc", R"({"id":1,"balance":50})", {{"If-Match", minted}});
    EXPECT_EQ(write.status, 204) << write.body;
    // And the version that write replaced is gone, whichever tag named it.
    EXPECT_EQ(send("PUT", "/doc", R"({"id":1,"balance":60})", {{"If-Match", apache}}).status, 409);
    arbiter_.reset();
  }
}

// ---- item 11 ----

TEST_F(ConditionalTest, A201CarriesTheCreatedResourcesTagNotTheCollections) {
  // The legacy API: POST /items answers 201 with Location: /items/N.
  start(ConfigOptions{.leading_routes =
                          "\n[[route]]\nname = \"items-tagged\"\npath = \"/items/{id}\"\nmethods = [\"GET\"]\n"
                          "upstream = \"legacy\"\n[route.etag]\n"
                          "\n[[route]]\nname = \"collection-tagged\"\npath = \"/items\"\n"
                          "methods = [\"HEAD\", \"POST\"]\nupstream = \"legacy\"\n[route.etag]\n"});
  std::string collection = send("HEAD", "/items").header("ETag").value_or("");
  ASSERT_FALSE(collection.empty());
  HttpResponse created = send("POST", "/items", R"({"name":"sprocket"})", {{"Content-Type", "application/json"}});
  ASSERT_EQ(created.status, 201);
  std::string location = created.header("Location").value_or("");
  ASSERT_FALSE(location.empty());
  std::string etag = created.header("ETag").value_or("");
  HttpResponse read = send("GET", location);
  ASSERT_EQ(read.status, 200);
  EXPECT_EQ(etag, read.header("ETag").value_or(""));
  EXPECT_NE(etag, collection);
  EXPECT_NE(etag, send("HEAD", "/items").header("ETag").value_or(""));
}

// ---- item 12 ----

TEST_F(ConditionalTest, AnEventStreamIsRelayedAsItArrivesUntagged) {
  std::mutex mutex;
  std::condition_variable changed;
  bool first_event_seen = false;
  ScriptedBackend backend([&](const ScriptedRequest&) {
    ScriptedResponse response{200, {{"Content-Type", "text/event-stream"}, {"ETag", "\"stream\""}}, {}, {}};
    response.stream = [&](const std::function<bool(std::string_view)>& send_chunk) {
      send_chunk("data: first\n\n");
      // The stream goes on until the client has the first event (bounded, so a failing
      // Arbiter that holds the stream ends the test instead of hanging it).
      std::unique_lock lock(mutex);
      changed.wait_for(lock, 30s, [&] { return first_event_seen; });
      lock.unlock();
      send_chunk("data: last\n\n");
    };
    return response;
  });
  start_in_front_of(backend);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(arbiter_->port());
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  timeval timeout{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string request = harness::format_request("GET", "/doc", arbiter_->port());
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  // The head and the first event arrive while the backend still holds the stream open.
  std::string received;
  char buffer[4096];
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (received.find("data: first") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n == 0) break;
    if (n > 0) received.append(buffer, static_cast<std::size_t>(n));
  }
  EXPECT_NE(received.find("data: first"), std::string::npos) << "the first event was held: " << received;
  EXPECT_EQ(received.find("data: last"), std::string::npos);
  {
    std::lock_guard lock(mutex);
    first_event_seen = true;
  }
  changed.notify_all();
  while (received.find("data: last") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n == 0) break;
    if (n > 0) received.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  EXPECT_NE(received.find("data: last"), std::string::npos);
  std::string lower = received;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_EQ(lower.find("\r\netag:"), std::string::npos) << received;
  EXPECT_NE(lower.find("text/event-stream"), std::string::npos);
}

}  // namespace
