#pragma once
// The conflict log: the last refused writes of every route, for the conflict feed. It belongs
// to the process's long-lived policy state (proxy/exchange/runtime.h's RuntimeState), not to a policy
// object, so a reload that replaces the ETag policies keeps it. One log for all routes; each
// record names its route. Bounded: the oldest record gives way.
//
// Thread-safety: every member may be called from any thread.

#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "policies/policy.h"

namespace arbiter {

// One refused write (type "conflict"), or one merged instead of refused ("merged").
struct ConflictRecord {
  MonotonicTime time;
  std::string route;
  std::string resource;
  std::string method;
  std::string precondition;                 // the field that failed: "If-Match" or "If-None-Match"
  std::string your_etag;                    // that field's value as sent
  std::optional<std::string> current_etag;  // nullopt: the resource does not exist
  std::string request_id;
  std::string type = "conflict";            // "conflict" or "merged"
  std::optional<std::string> base_etag;     // a merge's base: the version the client's If-Match named
  std::vector<std::string> pointers;        // merged: the client's changes; refused by a merge: the overlap
};

class ConflictLog {
 public:
  static constexpr std::size_t kDefaultCapacity = 1000;
  explicit ConflictLog(std::size_t capacity = kDefaultCapacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  void record(ConflictRecord record);
  // Oldest first; at most capacity() records.
  std::vector<ConflictRecord> recent() const;
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::deque<ConflictRecord> records_;  // guarded by mutex_
};

}  // namespace arbiter
