#pragma once
// The /_test/ endpoints the integration tests drive the backend with (documented in main.cpp).

#include <nlohmann/json.hpp>

#include <cstddef>
#include <deque>
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
  };
  std::deque<Entry> entries_;
};

bool is_test_hook(const Request& request);
Reply serve_test_hook(const Request& request, RequestLog& log);

}  // namespace legacy
