#pragma once
// The /_test/ endpoints the integration tests drive the backend with (documented in main.cpp).

#include <nlohmann/json.hpp>

#include <cstddef>
#include <deque>
#include <optional>
#include <string>

#include "http_server.h"

namespace legacy {

// What the backend received, so a test can see what the proxy forwarded.
class RequestLog {
 public:
  // Beyond this many entries the oldest are dropped, so a long benchmark cannot exhaust memory.
  static constexpr std::size_t kCapacity = 100000;

  void record(const Request& request);
  void clear() { entries_.clear(); }
  nlohmann::json to_json() const;

 private:
  struct Entry {
    std::string method;
    std::string target;
    HeaderPairs headers;
    std::size_t body_length = 0;
    std::uint64_t connection = 0;
  };
  std::deque<Entry> entries_;
};

// Faults armed with POST /_test/fault for the next request to a document path: the request
// is answered with a reset, a close or nothing at all, after being applied to the store or not.
class FaultTable {
 public:
  struct Fault {
    std::string method;  // empty: any method but GET and HEAD
    std::string path;
    Reply reply;
    bool apply = false;  // serve the request (change the store) before failing
  };
  void arm(Fault fault) { faults_.push_back(std::move(fault)); }
  void clear() { faults_.clear(); }
  // The first armed fault for this request, disarmed.
  std::optional<Fault> take(const Request& request);

 private:
  std::deque<Fault> faults_;
};

// What the hooks read and change.
struct TestHookState {
  RequestLog log;
  FaultTable faults;
  const ConnectionCounts* connections = nullptr;
};

bool is_test_hook(const Request& request);
Reply serve_test_hook(const Request& request, TestHookState& state);

}  // namespace legacy
