#pragma once
// JSON three-way merge and patch application for [route.etag] on_conflict = "merge" and
// patch = "apply" (issue #15). Pure functions of their arguments: no I/O, no state, safe to call
// from any thread; nothing returned refers to an argument.
//
// A change is named by a JSON Pointer (RFC 6901). Changes are minimal: an added, removed or
// replaced object member is its own change; a value whose JSON type changed is one change (no
// changes inside it); an array is ONE value (any change inside it is a change of the array)
// unless MergeKeys names it. A keyed array is a set of objects told apart by their key member:
// an added, removed or changed element is its own change, minimal again inside the element.
// A keyed array falls back to one value when, in either document, an element is not an object,
// lacks the key member, has a key that is not a string or a 64-bit signed integer, or shares
// its key with another element; and when the elements both documents hold are in a different
// order (a reorder is a change of the whole array).
//
// Two changes overlap when one's path equals or contains the other's, token by token, where a
// keyed element is its key value (not its index, which may differ between documents). The root
// "" contains every path.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace arbiter {

// JSON Pointer of a keyed array as written in the configuration ("/lines", "/order/lines"): the
// array's pointer with the indices of enclosing keyed elements left out, so "/lines/sub" is the
// array "sub" inside every element of the keyed array "/lines"; "" is a root array. Maps to the
// member naming its elements ("id").
using MergeKeys = std::map<std::string, std::string, std::less<>>;

// The changes from `from` to `to`, each as an RFC 6901 pointer into one document: `to` when the
// whole path exists there (added and changed values), otherwise `from` (removed values, and
// paths through keyed elements `to` no longer holds). Keyed elements appear as their index in
// that document. Order: document order, keyed elements in `to`'s order, then the removed ones.
std::vector<std::string> changed_pointers(const nlohmann::json& from, const nlohmann::json& to, const MergeKeys& keys);

struct MergeOutcome {
  bool merged = false;
  // merged: `current` with every change of base -> yours applied. Object members keep the
  // json's own (sorted) order; keyed arrays keep current's order, a changed element in its place,
  // elements yours added appended in yours' order.
  nlohmann::json document;
  // merged: yours' changes, as changed_pointers(base, yours) names them.
  std::vector<std::string> applied;
  // !merged: the pointers of both sides' overlapping changes, sorted and unique, each rendered
  // into yours when its whole path exists there, else into current, else into base.
  std::vector<std::string> conflicts;
};

// Rebases the client's edit (base -> yours) onto the version now current (base -> current).
// Merged when no change of one side overlaps a change of the other; the same change made by both
// sides (same path, same new value or both removing) does not conflict. `current` is taken by
// value and becomes the merged document: pass it with std::move when it is not needed after
// (copying a 10 KiB document is about a third of a merge's time).
MergeOutcome three_way_merge(const nlohmann::json& base, nlohmann::json current, const nlohmann::json& yours,
                             const MergeKeys& keys);

struct PatchOutcome {
  enum class Result : std::uint8_t {
    Applied,     // document holds the patched document
    TestFailed,  // a JSON Patch "test" found another value or no value (HTTP 409)
    Malformed,   // the patch is not a valid patch, or an operation cannot apply (HTTP 400)
  };
  Result result = Result::Applied;
  nlohmann::json document;
  // Not Applied: one sentence; for JSON Patch naming the operation by its index in the patch
  // (from 0) with its op and path: "operation 2 (replace /a/b): path does not exist".
  std::string error;
};

// Documents nested deeper than this are not merged, patched or diffed: the merge, nlohmann's
// comparison and dump recurse once per level, and a request body of a megabyte of '[' would
// otherwise overflow a worker's stack.
inline constexpr std::size_t kMaxJsonDepth = 512;

// `text` parsed as JSON, when it is JSON nested at most kMaxJsonDepth deep; nullopt otherwise.
std::optional<nlohmann::json> parse_json_document(std::string_view text);

// RFC 7396 JSON Merge Patch: any JSON value is a patch (null members remove), so always Applied.
PatchOutcome apply_merge_patch(const nlohmann::json& document, const nlohmann::json& patch);

// RFC 6902 JSON Patch: every operation's shape is checked before any is applied, so a malformed
// patch is Malformed even when an earlier test would fail. Operations apply in order to a copy;
// the first that fails decides the outcome. Removing the root "" is Malformed.
PatchOutcome apply_json_patch(const nlohmann::json& document, const nlohmann::json& patch);

}  // namespace arbiter
