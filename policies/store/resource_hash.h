#pragma once
// How the in-memory resource stores key a resource: the 128-bit XXH3 of its key string, seeded
// at random per table (sharding.h's random_hash_seed()), as the bucket and slot tables seed
// theirs: a resource key is a path that clients choose, and with a known hash they could
// choose paths that all fall into one bucket of a table. Internal to policies/memory_*.cpp.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <xxhash.h>

namespace arbiter {

struct ResourceHash {
  std::uint64_t low = 0;
  std::uint64_t high = 0;
  bool operator==(const ResourceHash&) const = default;
};

inline ResourceHash resource_hash(std::string_view resource, std::uint64_t seed) noexcept {
  XXH128_hash_t hash = XXH3_128bits_withSeed(resource.data(), resource.size(), seed);
  return {hash.low64, hash.high64};
}

// The key is a hash already. Shards are picked by the high half, buckets by the low one, so the
// keys of one shard still spread over its buckets. noexcept keeps libstdc++ from caching the
// hash in every node (8 bytes an entry).
struct ResourceHashHasher {
  std::size_t operator()(const ResourceHash& key) const noexcept { return static_cast<std::size_t>(key.low); }
};

}  // namespace arbiter
