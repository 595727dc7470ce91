#pragma once
// The local handlers of one listener, by path: each worker has one registry for the admin
// listener (mounted at the root) and one for [server] control_prefix on the client listeners
// (mounted at the prefix). Built when the worker starts and not changed afterwards; used on the
// worker's loop only (see proxy/control/local_handler.h for the threading contract).
//
// Paths are registered relative to the mount ("/metrics"; "/" is the mount itself followed by a
// slash, "/_arbiter/"). A request's path is looked up relative to the mount too. Matching:
//   - an Exact entry takes that path only;
//   - a Prefix entry ("/feeds/") takes that path and every path below it;
//   - the exact entries win, then the longest prefix;
//   - several entries may share a path with different methods (GET and POST of one resource);
//   - GET takes HEAD too.
// Answers made by the registry itself, as problem+json: a path no entry takes is 404
// (`not-found`, listing the endpoints), a path taken with another method 405 (`method-not-allowed`)
// with an Allow field.

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/control/local_handler.h"

namespace arbiter {

enum class PathMatch : std::uint8_t { Exact, Prefix };

class HandlerRegistry {
 public:
  struct Entry {
    std::string path;                  // relative to the mount, starts with '/'
    PathMatch match = PathMatch::Exact;
    std::vector<std::string> methods;  // upper-case, not empty; GET implies HEAD
    std::string summary;               // one line for listings, e.g. "Prometheus metrics"
    std::shared_ptr<LocalHandler> handler;
    // The [control] token scope a caller needs (proxy/config/control_config.h's kControlScopes);
    // empty: none beyond reaching the registry (the control index; every admin endpoint).
    std::string scope;
    // > 0: the request body is read whole, up to this many bytes (else 413), and handed to the
    // handler in LocalRequest::body; 0: the handler takes none (a body is read and dropped).
    std::size_t body_limit = 0;
  };

  // `name` says whose endpoints these are in the 404 detail: "No admin endpoint /x; ...".
  explicit HandlerRegistry(std::string name) : name_(std::move(name)) {}

  // Throws std::invalid_argument for a path that does not start with '/', no methods, or a
  // method already taken for that path.
  void add(std::string path, PathMatch match, std::vector<std::string> methods, std::string summary,
           std::shared_ptr<LocalHandler> handler, std::string scope = {}, std::size_t body_limit = 0);

  enum class Outcome : std::uint8_t { Found, NotFound, MethodNotAllowed };
  struct Lookup {
    Outcome outcome = Outcome::NotFound;
    const Entry* entry = nullptr;  // Found: the entry to call
    std::string allow;             // MethodNotAllowed: the methods the path takes, "GET, HEAD"
  };
  // `path` relative to the mount (empty for the mount itself, which no entry can take).
  Lookup find(std::string_view method, std::string_view path) const;

  // Looks request.path up (relative to request.mount, which it must start with) and calls the
  // handler, or answers the 404/405 problem itself.
  void dispatch(const LocalRequest& request, LocalResponder& responder) const;

  // In registration order.
  const std::vector<Entry>& entries() const noexcept { return entries_; }
  const std::string& name() const noexcept { return name_; }
  // The endpoints for people: "/healthz, /metrics and POST /reload" (GET endpoints bare, a
  // Prefix entry with a trailing '*'), paths under `mount`.
  std::string listing(std::string_view mount) const;
  // An entry's methods as a client may send them: each once, HEAD after GET.
  static std::vector<std::string> allowed(const std::vector<std::string>& methods);
  // allowed(methods) as an Allow field lists them: "GET, HEAD".
  static std::string allow_text(const std::vector<std::string>& methods);

 private:
  std::string name_;
  std::vector<Entry> entries_;
};

// How a program adds handlers of its own to each worker's registries (Server::add_handlers):
// called once per worker as it is built. The product's handlers are in proxy/control/; tests
// add test-only ones this way, in a test binary.
using HandlerSetup = std::function<void(HandlerRegistry& admin, HandlerRegistry& control)>;

}  // namespace arbiter
