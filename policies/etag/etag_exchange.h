#pragma once
// EtagPolicy's per-request state (EtagPolicy::Exchange), shared by the files that implement the
// policy (etag_policy.cpp: tags, turns, preconditions; etag_history.cpp: history, merge, PATCH).
// Private to the policy: nothing else includes it.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policies/etag/etag_policy.h"
#include "policies/store/store_call.h"

namespace arbiter {

inline constexpr std::string_view kIfMatch = "If-Match";
inline constexpr std::string_view kIfNoneMatch = "If-None-Match";

// The policy's reads of a resource (the verify GET, the re-read after a write, the
// representation behind a HEAD or a 304, the current document a merge or a patch needs): side
// requests to the route's upstream as the client would GET it, the body kept up to
// max_body_bytes for hashing. Answered to on_fetched and on_response_fetched
// (Policy::on_side_responses' default).
inline SideRequestSpec read_of(std::string target, std::size_t max_body_bytes) {
  SideRequestSpec read = SideRequestSpec::fetch(std::move(target));
  read.body_limit = max_body_bytes;
  return read;
}

// What one request carries from hook to hook: for a read, the store's sequence when it began;
// for a write, its place in the resource's write queue and how far it got; and the store call
// it waits for, when the store did not answer at once (its completions land here, so the call
// is cancelled if the exchange ends first). on_end() settles an unsettled write and gives the
// turn back; destroying the state gives back whatever it still holds.
class EtagPolicy::Exchange final : public ExchangeState {
 public:
  enum class Role : std::uint8_t { Read, Write };
  enum class Stage : std::uint8_t {
    Reading,     // a read, forwarded
    Sequencing,  // a read, asking the store for the resource's sequence
    CheckingIfMatch,  // a read with If-Match, reading the current version first
    Acquiring,   // a write, asking the store for its place in the write queue
    Queued,      // a write waiting for its turn
    Recalling,   // holding the turn (verify = "cache"), asking the store for the known version
    Joining,     // holding the turn, re-read: asking the store for the version's other names
    Verifying,   // holding the turn, re-reading the current version
    Forwarded,   // the write went upstream; its outcome is not known yet
    Refreshing,  // the write succeeded; re-reading its new version
    Settled,     // the store holds what is known (or the write never went upstream)
    Remembering, // a read with Accept-Datetime, asking the history for the version then current
  };

  Exchange(Role role, std::string resource)
      : stage(role == Role::Read ? Stage::Reading : Stage::Settled),
        role_(role),
        resource_(std::move(resource)) {}

  Role role() const noexcept { return role_; }
  const std::string& resource() const noexcept { return resource_; }

  // Completions of the request-phase store calls.
  void on_sequence(StoreResult<std::uint64_t>&& result) {
    seen_sequence = result.value;
    wait.answered(result.ok());
  }
  void on_turn(StoreResult<std::unique_ptr<WriteTurn>>&& result) {
    turn = std::move(result.value);
    wait.answered(result.ok());
  }
  void on_known(StoreResult<std::optional<std::string>>&& result) {
    known = std::move(result.value);
    wait.answered(result.ok());
  }

  // A PATCH this route applies itself ([route.etag] patch = "apply"), parsed before the turn.
  enum class PatchType : std::uint8_t { None, MergePatch, JsonPatch };

  void on_lookup(StoreResult<VersionLookup>&& result) {
    lookup = std::move(result.value);
    wait.answered(result.ok());
  }

  Stage stage;
  std::uint64_t seen_sequence = 0;  // reads: store sequence() when the read began
  bool remember = true;             // reads: may the store learn the tag (see on_read_request)
  Precondition::Form if_match = Precondition::Form::Absent;  // reads: the request's If-Match, parsed once
  std::vector<std::string> strip;   // reads: the request fields answered here, not forwarded
  std::string created;              // a 201's created resource, when it is being read
  std::uint64_t created_sequence = 0;
  MonotonicTime queue_deadline{};
  std::unique_ptr<WriteTurn> turn;  // writes: released with the exchange, or on a queue timeout
  // Joining: what the re-read showed, until the store's names of the version are known.
  std::optional<std::string> shown;
  VersionTags seen;
  std::optional<std::string> known;  // Recalling, Joining: what the store answered
  // Writes that may merge or apply a patch (wants_document): the current representation, as the
  // verify read showed it (have_document false: not read, or too large).
  bool wants_document = false;
  bool have_document = false;
  std::string document;
  bool document_gone = false;      // the verify read found no resource (404, 410)
  bool fetching_document = false;  // a read of the current representation was asked for it
  PatchType patch = PatchType::None;
  nlohmann::json patch_body;       // the parsed patch, when patch != None
  std::string merged;              // Arbiter-Merge for the response; empty: not merged
  VersionLookup lookup;            // Remembering: the history's answer

  // The store call made last. Declared after every member its completions write, so that a
  // call still outstanding is cancelled before they go.
  StoreWait wait;

 private:
  Role role_;
  std::string resource_;
};

// The value of a store read when the store answers at once (the memory stores always do);
// nullopt when it would answer later (the call is then cancelled: the policy does not wait
// there) or failed.
template <typename T, typename Call>
std::optional<T> answered_at_once(Call&& call) {
  std::optional<T> value;
  auto record = [&value](StoreResult<T>&& result) {
    if (result.ok()) value = std::move(result.value);
  };
  StoreCall pending = call(Completion<T>(record));
  return value;
}

}  // namespace arbiter
