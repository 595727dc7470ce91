#pragma once
// Optimistic concurrency for backends that have none: strong ETags on reads, and writes
// with a stale If-Match refused before they reach the backend.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "policies/policy.h"
#include "policies/version_store.h"

namespace arbiter {

struct EtagPolicyConfig {
  int conflict_status = 409;          // or 412
  bool require_if_match = false;      // a write without If-Match gets 428
  enum class Verify : std::uint8_t { Upstream, Cache };
  Verify verify = Verify::Upstream;   // re-read the resource before each conditional write
  enum class Source : std::uint8_t { Auto, Hash, JsonPointer };
  Source source = Source::Auto;
  std::string json_pointer;           // Source::JsonPointer: e.g. "/version"
  std::string resource;               // key template with {param}s; empty = the request path
  std::size_t max_entries = 1000000;  // of the ETag table
  std::size_t max_body_bytes = 1u << 20;  // larger representations are not hashed
  std::size_t max_queue = 64;         // writers waiting per resource
  std::chrono::milliseconds queue_timeout{5000};
};

}  // namespace arbiter
