#include "policies/store/resource_stores.h"

#include "policies/store/memory_conflict_feed.h"
#include "policies/store/memory_history_store.h"
#include "policies/store/memory_lock_store.h"
#include "policies/store/memory_write_queues.h"

namespace arbiter {

ResourceStores::ResourceStores()
    : write_turns(std::make_shared<MemoryWriteQueues>()),
      feed(std::make_shared<MemoryConflictFeed>()),
      locks(std::make_shared<MemoryLockStore>()),
      history(std::make_shared<MemoryHistoryStore>()) {}

ResourceStores::~ResourceStores() = default;

}  // namespace arbiter
