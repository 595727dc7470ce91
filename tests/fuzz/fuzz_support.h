#pragma once
// What the libFuzzer harnesses share: a configuration built in, a fake clock, a waker that only
// records, and a deterministic way to cut one input into the reads a socket would deliver.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <xxhash.h>

#include "policies/policy.h"
#include "proxy/config/config.h"

namespace arbiter::fuzz {

// Parses a configuration the harness relies on; a harness with a broken one must not run.
inline Config fixed_config(std::string_view toml) {
  try {
    return parse_config(toml, "fuzz.toml");
  } catch (const ConfigError& error) {
    for (const ConfigDiagnostic& diagnostic : error.diagnostics()) std::fprintf(stderr, "%s\n", diagnostic.text().c_str());
    std::abort();
  }
}

// The policies read the time only from RequestView::now: this is the whole clock.
class FakeClock {
 public:
  MonotonicTime now() const noexcept { return now_; }
  void advance(Duration by) noexcept { now_ += by; }
  void advance_to(MonotonicTime when) noexcept {
    if (when > now_) now_ = when;
  }

 private:
  MonotonicTime now_ = MonotonicTime{} + std::chrono::hours(1);
};

// Wakes nothing: the harness asks a waiting policy again itself (at once when woken, else at
// its deadline), as ClientConnection does on the waker or on its timer.
class RecordingWaker final : public Waker {
 public:
  void wake() override { woken = true; }
  bool woken = false;
};

// Cuts `data` into the pieces successive socket reads would deliver. The cuts are derived from
// the input's own hash, so a crash reproduces from the input alone, while inputs differing in
// one byte are read in different pieces: a quarter of the inputs arrive whole, the others in
// pieces of 1 to 64 bytes. Calls fn(std::string_view) for each piece.
template <typename Fn>
void for_each_read(std::string_view data, Fn&& fn) {
  std::uint64_t state = XXH3_64bits(data.data(), data.size());
  if ((state & 3) == 0) {
    fn(data);
    return;
  }
  while (!data.empty()) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;  // LCG (Knuth's MMIX)
    std::size_t piece = 1 + static_cast<std::size_t>((state >> 33) % 64);
    if (piece > data.size()) piece = data.size();
    fn(data.substr(0, piece));
    data.remove_prefix(piece);
  }
}

}  // namespace arbiter::fuzz
