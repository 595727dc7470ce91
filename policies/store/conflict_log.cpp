#include "policies/store/conflict_log.h"

#include <utility>

namespace arbiter {

void ConflictLog::record(ConflictRecord record) {
  std::lock_guard lock(mutex_);
  if (records_.size() == capacity_) records_.pop_front();
  records_.push_back(std::move(record));
}

std::vector<ConflictRecord> ConflictLog::recent() const {
  std::lock_guard lock(mutex_);
  return {records_.begin(), records_.end()};
}

}  // namespace arbiter
