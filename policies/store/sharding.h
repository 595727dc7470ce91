#pragma once
// What the in-memory tables of the policies share about splitting a
// bounded table into shards that each have a lock.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <random>

namespace arbiter {

// requested, or when 0: one shard per keys_per_shard of max_keys, between 1 and max_shards.
// Never more shards than keys, so that every shard can hold at least one.
inline std::size_t shard_count_for(std::size_t max_keys, std::size_t requested, std::size_t keys_per_shard,
                                   std::size_t max_shards) noexcept {
  max_keys = std::max<std::size_t>(1, max_keys);
  if (requested == 0) requested = std::clamp<std::size_t>(max_keys / keys_per_shard, 1, max_shards);
  return std::min(requested, max_keys);
}

// Shard i's share of max_keys; the shares add up to max_keys exactly.
inline std::size_t shard_share(std::size_t max_keys, std::size_t shard_count, std::size_t i) noexcept {
  return max_keys / shard_count + (i < max_keys % shard_count ? 1 : 0);
}

// count(shard) added over shards[0, shard_count), each counted under its own `mutex`.
template <typename Shard, typename Count>
std::size_t sum_over_shards(Shard* shards, std::size_t shard_count, Count count) {
  std::size_t total = 0;
  for (std::size_t i = 0; i < shard_count; ++i) {
    std::lock_guard lock(shards[i].mutex);
    total += count(shards[i]);
  }
  return total;
}

// A seed for hashing keys that clients choose, so that they cannot pick keys that collide.
inline std::uint64_t random_hash_seed() {
  std::random_device device;
  return (std::uint64_t{device()} << 32) ^ device();
}

}  // namespace arbiter
