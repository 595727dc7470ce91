// legacy-api: the demo backend that Arbiter is put in front of.
//
// A single-threaded HTTP/1.1 server (libuv + llhttp) holding JSON documents in memory.
// It never sends ETag or Last-Modified: adding validators is the proxy's job.
//
//   legacy-api [--listen HOST:PORT]     default 127.0.0.1:8081; port 0 lets the kernel pick
//
// Once listening it prints one line, `legacy-api listening on HOST:PORT`, to stdout.
// SIGTERM and SIGINT stop it with exit status 0.
//
// Documents (seeded with /items/1 and /accounts/1):
//   GET    /                   index of the collections
//   GET    /{collection}       200, array of its documents (objects carry their "id")
//   POST   /{collection}       201 + Location, next numeric id; body must be JSON (else 400)
//   GET    /{collection}/{id}  200 or 404
//   PUT    /{collection}/{id}  200 replaced, 201 created
//   PATCH  /{collection}/{id}  200, RFC 7396 merge patch; 404 if missing
//   DELETE /{collection}/{id}  204 or 404
// Request bodies above 64 MiB get 413, heads above 64 KiB get 431, unparsable requests
// get 400; all three then close the connection.
//
// Test hooks, for the integration tests (any method unless stated):
//   /_test/echo              200 {"method","target","version":"1.1","headers":[[name,value],...],
//                            "body_length","body_xxh3"}: headers in received order, names as
//                            received; body_xxh3 is the hex XXH3_64bits of the body.
//   GET /_test/log           every request received since start or since the last
//                            DELETE /_test/log, except /_test/log requests:
//                            [{"method","target","headers":[[n,v],...],"body_length","connection"}]
//                            (only the latest 100000 are kept)
//   DELETE /_test/log        204, empties the log
//   /_test/delay?ms=N        200 {"delayed_ms":N} after N ms (a timer: other connections
//                            are served meanwhile)
//   /_test/bytes?n=N         200, N bytes 'a'..'z' repeating, with Content-Length;
//                            &chunked=1 sends them chunked in 16 KiB chunks (HTTP/1.1 clients)
//   /_test/status?code=N     that status (200..599) with {"status":N}; no body for 204/304
//   /_test/close             closes the connection without answering
//   /_test/reset             resets the connection (RST) without answering
//   /_test/garbage           writes "this is not http\r\n\r\n", then closes (&then=, below)
//   /_test/partial           a head with Content-Length: 100 and 10 bytes of body, then closes
//                            (&then=, below)
// Misbehaving answers for the failing-backend tests; &then=close|reset|hang says what follows
// the bytes: close (FIN, the default), reset (RST 50 ms later), or hang (nothing: the connection
// stays open, answering nothing more, until the peer closes it):
//   /_test/hang              no answer at all (as &then=hang with no bytes)
//   /_test/half-head         "HTTP/1.1 200 OK\r\nContent-Type: appl" (a head cut short), then &then=
//   /_test/short-chunked     a chunked head and one 26-byte chunk, never the last chunk, then &then=
//   /_test/big-head?bytes=N  200 whose head carries about N bytes of X-Filler-NNNNN fields
//                            (1000-byte values), body {"filler_bytes":N}; keep-alive as usual
//   /_test/raw               writes the request body back as it is, as the whole answer, then
//                            &then= (which here also takes serve: go on serving the connection)
//   /_test/extra-response    a complete 200 {"extra":0} immediately followed, in the same write,
//                            by a second, unrequested 200 {"smuggled":true}; then serves on
//   GET /_test/connections   {"accepted":N,"open":M,"open_ids":[...]}: connections accepted
//                            since start, and those open now (this one included) with their
//                            serial numbers (see "connection" below)
//   POST /_test/fault?path=P&action=reset|close|hang[&apply=1][&method=M]
//                            204; arms a one-shot fault: the next request for path P (with method
//                            M; default any but GET/HEAD) is answered with a reset, a close or
//                            nothing (hang), after being applied to the documents when apply=1
//                            (the write happened, its answer is lost). DELETE /_test/fault
//                            disarms all.
// Every request (hooks too) carries the serial number of its connection, which /_test/log
// reports as "connection": a test can tell a reused connection from a new one.

#include <uv.h>

#include <csignal>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "document_store.h"
#include "http_server.h"
#include "test_hooks.h"

namespace {

constexpr const char* kUsage = "usage: legacy-api [--listen HOST:PORT]\n";

struct ListenAddress {
  std::string host;
  std::uint16_t port = 0;
};

// "127.0.0.1:8081" or "[::1]:8081".
std::optional<ListenAddress> parse_listen_address(std::string_view text) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return std::nullopt;
    host = host.substr(1, host.size() - 2);
  }
  const std::string port_text(text.substr(colon + 1));
  if (port_text.empty() || port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  const unsigned long port = std::stoul(port_text);
  if (port > 65535) return std::nullopt;
  return ListenAddress{std::string(host), static_cast<std::uint16_t>(port)};
}

void stop_loop(uv_signal_t* signal, int) { uv_stop(signal->loop); }

}  // namespace

int main(int argc, char** argv) {
  ListenAddress listen_address{"127.0.0.1", 8081};
  for (int i = 1; i < argc; ++i) {
    const std::string_view argument = argv[i];
    if (argument == "--help" || argument == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (argument == "--listen" && i + 1 < argc) {
      const auto parsed = parse_listen_address(argv[++i]);
      if (!parsed) {
        std::fprintf(stderr, "legacy-api: invalid --listen address: %s\n", argv[i]);
        return 2;
      }
      listen_address = *parsed;
      continue;
    }
    std::fprintf(stderr, "legacy-api: unexpected argument: %s\n%s", argv[i], kUsage);
    return 2;
  }

  // A client that vanishes mid-write must cost us an EPIPE, not the process.
  std::signal(SIGPIPE, SIG_IGN);
  uv_loop_t* loop = uv_default_loop();

  legacy::DocumentStore store;
  legacy::TestHookState hooks;
  legacy::HttpServer server(loop, [&](const legacy::Request& request) {
    // The log is what the proxy forwarded, so it covers the store's requests as well.
    if (request.path != "/_test/log") hooks.log.record(request);
    if (legacy::is_test_hook(request)) return legacy::serve_test_hook(request, hooks);
    if (auto fault = hooks.faults.take(request)) {
      if (fault->apply) legacy::serve_documents(store, request);  // done, but the answer is lost
      return std::move(fault->reply);
    }
    return legacy::serve_documents(store, request);
  });
  hooks.connections = &server.counts();

  std::string bound;
  try {
    bound = server.listen(listen_address.host, listen_address.port);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "legacy-api: %s\n", error.what());
    return 1;
  }

  uv_signal_t sigterm;
  uv_signal_t sigint;
  uv_signal_init(loop, &sigterm);
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigterm, stop_loop, SIGTERM);
  uv_signal_start(&sigint, stop_loop, SIGINT);

  std::printf("legacy-api listening on %s\n", bound.c_str());
  std::fflush(stdout);
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}
