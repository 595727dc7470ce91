#include "policies/store/memory_version_store.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "policies/etag/etag.h"
#include "policies/store/resource_hash.h"
#include "policies/store/sharding.h"

namespace arbiter {

namespace {

// An ETag in as few bytes as it allows: the 16 digest bytes of a minted tag, up to 16
// characters inline, anything longer on the heap; or unknown (a tombstone).
class StoredEtag {
 public:
  StoredEtag() noexcept {}
  ~StoredEtag() { clear(); }
  StoredEtag(const StoredEtag&) = delete;
  StoredEtag& operator=(const StoredEtag&) = delete;

  bool known() const noexcept { return form_ != Form::Unknown; }

  void assign(std::string_view etag) {
    clear();
    if (auto digest = minted_etag_digest(etag)) {
      digest_ = *digest;
      form_ = Form::Minted;
    } else if (etag.size() <= sizeof inline_) {
      std::memcpy(inline_, etag.data(), etag.size());
      size_ = static_cast<std::uint32_t>(etag.size());
      form_ = Form::Inline;
    } else {
      heap_ = new char[etag.size()];
      std::memcpy(heap_, etag.data(), etag.size());
      size_ = static_cast<std::uint32_t>(etag.size());
      form_ = Form::Heap;
    }
  }

  void clear() noexcept {
    if (form_ == Form::Heap) delete[] heap_;
    form_ = Form::Unknown;
  }

  std::optional<std::string> text() const {
    switch (form_) {
      case Form::Unknown: return std::nullopt;
      case Form::Minted: return minted_etag_text(digest_);
      case Form::Inline: return std::string(inline_, size_);
      case Form::Heap: return std::string(heap_, size_);
    }
    return std::nullopt;
  }

 private:
  enum class Form : std::uint8_t { Unknown, Minted, Inline, Heap };
  union {
    MintedDigest digest_;
    char inline_[16];
    char* heap_;
  };
  std::uint32_t size_ = 0;  // Inline and Heap; tags are header values, far below 4 GiB
  Form form_ = Form::Unknown;
};

struct TableEntry;
using TableNode = std::pair<const ResourceHash, TableEntry>;

struct TableEntry {
  StoredEtag etag;
  std::uint64_t sequence = 0;
  // The shard's recency list, threaded through the map's own nodes (which never move), so
  // that LRU order costs two pointers an entry and no allocation of its own.
  TableNode* newer = nullptr;
  TableNode* older = nullptr;
};

}  // namespace

// alignas: shards sit side by side in one array; their mutexes should not share a cache line.
struct alignas(64) MemoryVersionStore::Shard {
  mutable std::mutex mutex;
  std::size_t capacity = 1;
  std::unordered_map<ResourceHash, TableEntry, ResourceHashHasher> table;
  TableNode* most_recent = nullptr;
  TableNode* least_recent = nullptr;

  // All below: the caller holds `mutex`.

  TableNode* find(const ResourceHash& key) {
    auto it = table.find(key);
    return it == table.end() ? nullptr : &*it;
  }

  void unlink(TableNode* node) noexcept {
    TableEntry& entry = node->second;
    (entry.newer ? entry.newer->second.older : most_recent) = entry.older;
    (entry.older ? entry.older->second.newer : least_recent) = entry.newer;
    entry.newer = entry.older = nullptr;
  }

  void link_most_recent(TableNode* node) noexcept {
    node->second.older = most_recent;
    node->second.newer = nullptr;
    if (most_recent) most_recent->second.newer = node;
    most_recent = node;
    if (!least_recent) least_recent = node;
  }

  void touch(TableNode* node) noexcept {
    if (node == most_recent) return;
    unlink(node);
    link_most_recent(node);
  }

  // A new, most recent entry for a key that has none, the least recent one making room.
  TableNode* insert(const ResourceHash& key) {
    if (table.size() >= capacity && least_recent) {
      TableNode* evicted = least_recent;
      unlink(evicted);
      table.erase(evicted->first);
    }
    TableNode* node = &*table.try_emplace(key).first;
    link_most_recent(node);
    return node;
  }

  TableNode* find_or_insert(const ResourceHash& key) {
    if (TableNode* node = find(key)) {
      touch(node);
      return node;
    }
    return insert(key);
  }
};

MemoryVersionStore::MemoryVersionStore(std::size_t max_entries, std::size_t shard_count)
    : max_entries_(std::max<std::size_t>(1, max_entries)),
      shard_count_(shard_count_for(max_entries_, shard_count, kEntriesPerShard, kMaxShards)),
      seed_(random_hash_seed()),
      shards_(std::make_unique<Shard[]>(shard_count_)) {
  for (std::size_t i = 0; i < shard_count_; ++i) shards_[i].capacity = shard_share(max_entries_, shard_count_, i);
}

MemoryVersionStore::~MemoryVersionStore() = default;

MemoryVersionStore::Shard& MemoryVersionStore::shard_for(std::uint64_t key_high) noexcept {
  return shards_[key_high % shard_count_];
}

std::optional<std::string> MemoryVersionStore::get(std::string_view resource) {
  ResourceHash key = resource_hash(resource, seed_);
  Shard& shard = shard_for(key.high);
  std::lock_guard lock(shard.mutex);
  TableNode* node = shard.find(key);
  if (!node) return std::nullopt;
  shard.touch(node);
  return node->second.etag.text();
}

std::uint64_t MemoryVersionStore::sequence(std::string_view resource) {
  ResourceHash key = resource_hash(resource, seed_);
  Shard& shard = shard_for(key.high);
  std::lock_guard lock(shard.mutex);
  TableNode* node = shard.find(key);
  return node ? node->second.sequence : 0;
}

void MemoryVersionStore::put(std::string_view resource, std::string_view etag) {
  ResourceHash key = resource_hash(resource, seed_);
  Shard& shard = shard_for(key.high);
  std::lock_guard lock(shard.mutex);
  TableEntry& entry = shard.find_or_insert(key)->second;
  entry.etag.assign(etag);
  entry.sequence = next_sequence();
}

bool MemoryVersionStore::learn(std::string_view resource, std::string_view etag, std::uint64_t seen_sequence) {
  ResourceHash key = resource_hash(resource, seed_);
  Shard& shard = shard_for(key.high);
  std::lock_guard lock(shard.mutex);
  TableNode* node = shard.find(key);
  std::uint64_t current = node ? node->second.sequence : 0;
  if (current != seen_sequence) return false;
  if (node) {
    shard.touch(node);
  } else {
    node = shard.insert(key);
    node->second.sequence = next_sequence();
  }
  node->second.etag.assign(etag);
  return true;
}

void MemoryVersionStore::forget(std::string_view resource) {
  ResourceHash key = resource_hash(resource, seed_);
  Shard& shard = shard_for(key.high);
  std::lock_guard lock(shard.mutex);
  TableEntry& entry = shard.find_or_insert(key)->second;
  entry.etag.clear();
  entry.sequence = next_sequence();
}

std::size_t MemoryVersionStore::size() const {
  return sum_over_shards(shards_.get(), shard_count_, [](const Shard& shard) { return shard.table.size(); });
}

std::size_t MemoryVersionStore::approximate_bytes_per_entry() noexcept {
  // libstdc++'s node: the next pointer, then the value (no cached hash, see ResourceHashHasher).
  constexpr std::size_t kNodeBytes = sizeof(void*) + sizeof(TableNode);
  // glibc malloc: an 8-byte size header, chunks in steps of 16 bytes.
  constexpr std::size_t kChunkBytes = (kNodeBytes + sizeof(std::size_t) + 15) / 16 * 16;
  // unordered_map keeps at most one node per bucket on average (max_load_factor 1).
  constexpr std::size_t kBucketBytes = sizeof(void*);
  return kChunkBytes + kBucketBytes;
}

}  // namespace arbiter
