#include "policies/merge/json_merge.h"

#include <algorithm>
#include <charconv>
#include <compare>
#include <limits>
#include <optional>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>

namespace arbiter {
namespace {

using nlohmann::json;

// ---- paths ----------------------------------------------------------------------------------

// One step of a change's path: an object member by name, or a keyed array element by its key.
// For a key, text is the key value's JSON text (so 1 and "1" differ; an integer's text is its
// value whichever type stores it), key its value and key_member the member holding it.
// Compared and ordered on (is_key, text): the identity of a step in every document.
struct PathToken {
  bool is_key = false;
  std::string text;
  std::string key_member;
  json key;

  friend bool operator==(const PathToken& a, const PathToken& b) { return a.is_key == b.is_key && a.text == b.text; }
  friend bool operator<(const PathToken& a, const PathToken& b) {
    return std::tie(a.is_key, a.text) < std::tie(b.is_key, b.text);
  }
};
using Path = std::vector<PathToken>;

struct Change {
  Path path;
  std::optional<json> value;  // the new value; nullopt: removed
};

std::string escape_token(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

// A keyed array element's key, compared without serializing it: a string (viewed where it is
// stored) or an integer. Valid while the value it was read from is.
struct ElementKey {
  bool is_string = false;
  std::int64_t number = 0;
  std::string_view text;

  auto operator<=>(const ElementKey&) const = default;
};

// The key of a keyed array element: its key member when the element is an object whose key
// member is a string or an integer within int64 (a parsed 3 and a built 3 are one key, whichever
// integer type stores them).
std::optional<ElementKey> key_of(const json& key) {
  if (key.is_string()) {
    return ElementKey{.is_string = true, .text = key.get_ref<const std::string&>()};
  }
  constexpr auto kLargestKey = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (key.is_number_unsigned() && key.get<std::uint64_t>() > kLargestKey) {
    return std::nullopt;
  }
  if (key.is_number_integer()) {
    return ElementKey{.number = key.get<std::int64_t>()};
  }
  return std::nullopt;
}

std::optional<ElementKey> element_key(const json& element, const std::string& key_member) {
  if (!element.is_object()) {
    return std::nullopt;
  }
  auto found = element.find(key_member);
  return found == element.end() ? std::nullopt : key_of(*found);
}

std::optional<std::size_t> find_keyed(const json& array, const PathToken& token) {
  auto wanted = key_of(token.key);
  for (std::size_t i = 0; wanted && i < array.size(); ++i) {
    if (element_key(array[i], token.key_member) == wanted) {
      return i;
    }
  }
  return std::nullopt;
}

PathToken key_token(const json& key, const std::string& key_member) {
  return {.is_key = true, .text = key.dump(), .key_member = key_member, .key = key};
}

// The value `token` names inside `parent`, or nullptr when it is not there.
template <typename Json>
Json* step_into(Json& parent, const PathToken& token) {
  if (!token.is_key) {
    if (!parent.is_object()) {
      return nullptr;
    }
    auto found = parent.find(token.text);
    return found == parent.end() ? nullptr : &*found;
  }
  if (!parent.is_array()) {
    return nullptr;
  }
  auto index = find_keyed(parent, token);
  return index ? &parent[*index] : nullptr;
}

// The RFC 6901 pointer of `path` in `document`, or nullopt when the whole path is not there.
std::optional<std::string> render_in(const Path& path, const json& document) {
  std::string pointer;
  const json* cursor = &document;
  for (const auto& token : path) {
    if (token.is_key) {
      auto index = cursor->is_array() ? find_keyed(*cursor, token) : std::nullopt;
      if (!index) {
        return std::nullopt;
      }
      pointer += '/';
      pointer += std::to_string(*index);
      cursor = &(*cursor)[*index];
      continue;
    }
    cursor = step_into(*cursor, token);
    if (cursor == nullptr) {
      return std::nullopt;
    }
    pointer += '/';
    pointer += escape_token(token.text);
  }
  return pointer;
}

// `path` rendered into the first of `documents` holding all of it. Every change's path is whole in
// its new document or (removals) its old one, so the fallback, which writes a missing element as
// its key text, only guards against a caller passing documents the path did not come from.
std::string render(const Path& path, std::initializer_list<const json*> documents) {
  for (const json* document : documents) {
    if (auto pointer = render_in(path, *document)) {
      return *std::move(pointer);
    }
  }
  std::string pointer;
  for (const auto& token : path) {
    pointer += '/';
    pointer += escape_token(token.text);
  }
  return pointer;
}

// ---- the changes between two documents ------------------------------------------------------

// The keys of a keyed array's elements, in array order and sorted for lookups. Valid while the
// array is.
class KeyedElements {
 public:
  // nullopt when the array cannot be keyed (see json_merge.h).
  static std::optional<KeyedElements> of(const json& array, const std::string& key_member) {
    KeyedElements elements;
    elements.keys_.reserve(array.size());
    elements.sorted_.reserve(array.size());
    for (std::size_t i = 0; i < array.size(); ++i) {
      auto key = element_key(array[i], key_member);
      if (!key) {
        return std::nullopt;
      }
      elements.keys_.push_back(*key);
      elements.sorted_.emplace_back(*key, i);
    }
    std::sort(elements.sorted_.begin(), elements.sorted_.end());
    auto duplicate = std::adjacent_find(elements.sorted_.begin(), elements.sorted_.end(),
                                        [](const auto& a, const auto& b) { return a.first == b.first; });
    if (duplicate != elements.sorted_.end()) {
      return std::nullopt;
    }
    return elements;
  }

  const ElementKey& key(std::size_t index) const { return keys_[index]; }

  // The index of the element with this key.
  std::optional<std::size_t> find(const ElementKey& key) const {
    auto found = std::lower_bound(sorted_.begin(), sorted_.end(), key,
                                  [](const auto& entry, const ElementKey& wanted) { return entry.first < wanted; });
    if (found == sorted_.end() || found->first != key) {
      return std::nullopt;
    }
    return found->second;
  }

  // The keys `other` holds too, in this array's order.
  std::vector<ElementKey> shared_with(const KeyedElements& other) const {
    std::vector<ElementKey> shared;
    for (const auto& key : keys_) {
      if (other.find(key)) {
        shared.push_back(key);
      }
    }
    return shared;
  }

 private:
  std::vector<ElementKey> keys_;                            // in the array's order
  std::vector<std::pair<ElementKey, std::size_t>> sorted_;  // (key, index) by key
};

class Differ {
 public:
  Differ(const MergeKeys& keys, std::vector<Change>& changes) : keys_(keys), changes_(changes) {}

  void diff(const json& from, const json& to) {
    if (from == to) {
      return;
    }
    if (from.is_object() && to.is_object()) {
      diff_objects(from, to);
      return;
    }
    if (from.is_array() && to.is_array()) {
      auto key_member = keys_.find(pattern_);
      if (key_member != keys_.end() && diff_keyed(from, to, key_member->second)) {
        return;
      }
    }
    changes_.push_back({path_, to});
  }

 private:
  void diff_objects(const json& from, const json& to) {
    for (auto member = to.begin(); member != to.end(); ++member) {
      enter_member(member.key());
      auto old_member = from.find(member.key());
      if (old_member == from.end()) {
        changes_.push_back({path_, *member});
      } else {
        diff(*old_member, *member);
      }
      leave_member();
    }
    for (auto member = from.begin(); member != from.end(); ++member) {
      if (!to.contains(member.key())) {
        enter_member(member.key());
        changes_.push_back({path_, std::nullopt});
        leave_member();
      }
    }
  }

  // False, having recorded nothing, when the arrays cannot be merged element by element.
  bool diff_keyed(const json& from, const json& to, const std::string& key_member) {
    auto old_elements = KeyedElements::of(from, key_member);
    auto new_elements = KeyedElements::of(to, key_member);
    if (!old_elements || !new_elements ||
        old_elements->shared_with(*new_elements) != new_elements->shared_with(*old_elements)) {
      return false;
    }
    for (std::size_t i = 0; i < to.size(); ++i) {
      auto old_index = old_elements->find(new_elements->key(i));
      if (old_index && from[*old_index] == to[i]) {
        continue;
      }
      path_.push_back(key_token(*to[i].find(key_member), key_member));
      if (old_index) {
        diff(from[*old_index], to[i]);
      } else {
        changes_.push_back({path_, to[i]});
      }
      path_.pop_back();
    }
    for (std::size_t i = 0; i < from.size(); ++i) {
      if (!new_elements->find(old_elements->key(i))) {
        path_.push_back(key_token(*from[i].find(key_member), key_member));
        changes_.push_back({path_, std::nullopt});
        path_.pop_back();
      }
    }
    return true;
  }

  void enter_member(const std::string& name) {
    path_.push_back({.is_key = false, .text = name});
    pattern_sizes_.push_back(pattern_.size());
    pattern_ += '/';
    pattern_ += escape_token(name);
  }

  void leave_member() {
    path_.pop_back();
    pattern_.resize(pattern_sizes_.back());
    pattern_sizes_.pop_back();
  }

  const MergeKeys& keys_;
  std::vector<Change>& changes_;
  Path path_;
  std::string pattern_;  // path_ as MergeKeys writes it: member steps only
  std::vector<std::size_t> pattern_sizes_;
};

std::vector<Change> changes_between(const json& from, const json& to, const MergeKeys& keys) {
  std::vector<Change> changes;
  Differ(keys, changes).diff(from, to);
  return changes;
}

// ---- merging --------------------------------------------------------------------------------

bool is_prefix(const Path& prefix, const Path& path) {
  return prefix.size() <= path.size() && std::equal(prefix.begin(), prefix.end(), path.begin());
}

// Applies `change` to `document`; false when the place it names is not there.
bool apply_change(json& document, const Change& change) {
  if (change.path.empty()) {
    document = *change.value;  // the root is never removed: a diff replaces it
    return true;
  }
  json* parent = &document;
  for (std::size_t i = 0; i + 1 < change.path.size() && parent != nullptr; ++i) {
    parent = step_into(*parent, change.path[i]);
  }
  if (parent == nullptr) {
    return false;
  }
  const PathToken& last = change.path.back();
  if (!last.is_key) {
    if (!parent->is_object()) {
      return false;
    }
    if (change.value) {
      (*parent)[last.text] = *change.value;
    } else {
      parent->erase(last.text);
    }
    return true;
  }
  if (!parent->is_array()) {
    return false;
  }
  auto index = find_keyed(*parent, last);
  if (change.value) {
    if (index) {
      (*parent)[*index] = *change.value;
    } else {
      parent->push_back(*change.value);
    }
  } else if (index) {
    parent->erase(*index);
  }
  return true;
}

// The pairs (yours, current) of overlapping changes that are not the same change.
std::vector<std::pair<const Change*, const Change*>> overlapping(const std::vector<Change>& yours,
                                                                std::vector<Change>& current) {
  // Sorted by path, the changes at or under a path follow it contiguously; current's changes never
  // contain one another (a replaced value has no changes inside it), so each path appears once.
  std::sort(current.begin(), current.end(), [](const Change& a, const Change& b) { return a.path < b.path; });
  auto path_before = [](const Change& change, const std::pair<Path::const_iterator, Path::const_iterator>& range) {
    return std::lexicographical_compare(change.path.begin(), change.path.end(), range.first, range.second);
  };
  std::vector<std::pair<const Change*, const Change*>> pairs;
  for (const Change& mine : yours) {
    for (std::size_t length = 0; length < mine.path.size(); ++length) {
      auto range = std::make_pair(mine.path.begin(), mine.path.begin() + static_cast<std::ptrdiff_t>(length));
      auto found = std::lower_bound(current.begin(), current.end(), range, path_before);
      if (found != current.end() && std::equal(found->path.begin(), found->path.end(), range.first, range.second)) {
        pairs.emplace_back(&mine, &*found);
      }
    }
    auto whole = std::make_pair(mine.path.begin(), mine.path.end());
    for (auto theirs = std::lower_bound(current.begin(), current.end(), whole, path_before);
         theirs != current.end() && is_prefix(mine.path, theirs->path); ++theirs) {
      bool same_change = theirs->path.size() == mine.path.size() && theirs->value == mine.value;
      if (!same_change) {
        pairs.emplace_back(&mine, &*theirs);
      }
    }
  }
  return pairs;
}

// ---- JSON Patch -----------------------------------------------------------------------------

// RFC 6901 reference tokens, unescaped; nullopt when `text` is not a JSON Pointer.
std::optional<std::vector<std::string>> parse_pointer(std::string_view text) {
  std::vector<std::string> tokens;
  if (text.empty()) {
    return tokens;
  }
  if (text.front() != '/') {
    return std::nullopt;
  }
  std::string token;
  for (std::size_t i = 1; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '/') {
      tokens.push_back(std::move(token));
      token.clear();
    } else if (text[i] != '~') {
      token += text[i];
    } else if (i + 1 < text.size() && (text[i + 1] == '0' || text[i + 1] == '1')) {
      token += text[i + 1] == '0' ? '~' : '/';
      ++i;
    } else {
      return std::nullopt;
    }
  }
  return tokens;
}

// An RFC 6901 array index: "0" or digits without a leading zero.
std::optional<std::size_t> array_index(std::string_view token) {
  if (token.empty() || (token.size() > 1 && token.front() == '0')) {
    return std::nullopt;
  }
  std::size_t index = 0;
  auto [end, error] = std::from_chars(token.data(), token.data() + token.size(), index);
  if (error != std::errc() || end != token.data() + token.size()) {
    return std::nullopt;
  }
  return index;
}

using Tokens = std::vector<std::string>;

json* resolve(json& document, Tokens::const_iterator begin, Tokens::const_iterator end) {
  json* cursor = &document;
  for (auto token = begin; token != end; ++token) {
    if (cursor->is_object()) {
      auto found = cursor->find(*token);
      if (found == cursor->end()) {
        return nullptr;
      }
      cursor = &*found;
    } else if (cursor->is_array()) {
      auto index = array_index(*token);
      if (!index || *index >= cursor->size()) {
        return nullptr;
      }
      cursor = &(*cursor)[*index];
    } else {
      return nullptr;
    }
  }
  return cursor;
}

json* resolve(json& document, const Tokens& tokens) { return resolve(document, tokens.begin(), tokens.end()); }

enum class PatchOp : std::uint8_t { Add, Remove, Replace, Move, Copy, Test };

struct PatchStep {
  PatchOp op = PatchOp::Add;
  Tokens path;
  Tokens from;                   // Move, Copy
  const json* value = nullptr;  // Add, Replace, Test: inside the patch
  std::string label;            // "operation 2 (replace /a/b)"
};

std::optional<PatchOp> patch_op(std::string_view name) {
  static constexpr std::pair<std::string_view, PatchOp> kOps[] = {
      {"add", PatchOp::Add},   {"remove", PatchOp::Remove}, {"replace", PatchOp::Replace},
      {"move", PatchOp::Move}, {"copy", PatchOp::Copy},     {"test", PatchOp::Test},
  };
  for (const auto& [op_name, op] : kOps) {
    if (op_name == name) {
      return op;
    }
  }
  return std::nullopt;
}

// The operation's shape checked, or the sentence saying what is wrong with it.
std::variant<PatchStep, std::string> read_step(const json& operation, std::size_t index) {
  std::string label = "operation " + std::to_string(index);
  if (!operation.is_object()) {
    return label + ": not an object";
  }
  auto op_member = operation.find("op");
  auto path_member = operation.find("path");
  bool has_path = path_member != operation.end() && path_member->is_string();
  if (op_member == operation.end() || !op_member->is_string()) {
    return label + ": \"op\" is missing or not a string";
  }
  const auto& op_name = op_member->get_ref<const std::string&>();
  if (has_path) {
    const auto& path_text = path_member->get_ref<const std::string&>();
    label += " (" + op_name + " " + (path_text.empty() ? std::string("\"\"") : path_text) + ")";
  } else {
    label += " (" + op_name + ")";
  }
  auto op = patch_op(op_name);
  if (!op) {
    return label + ": unknown op";
  }
  if (!has_path) {
    return label + ": \"path\" is missing or not a string";
  }
  PatchStep step{.op = *op, .label = label};
  auto path = parse_pointer(path_member->get_ref<const std::string&>());
  if (!path) {
    return label + ": \"path\" is not a JSON Pointer";
  }
  step.path = *std::move(path);
  if (step.op == PatchOp::Move || step.op == PatchOp::Copy) {
    auto from_member = operation.find("from");
    if (from_member == operation.end() || !from_member->is_string()) {
      return label + ": \"from\" is missing or not a string";
    }
    auto from = parse_pointer(from_member->get_ref<const std::string&>());
    if (!from) {
      return label + ": \"from\" is not a JSON Pointer";
    }
    step.from = *std::move(from);
  }
  if (step.op == PatchOp::Add || step.op == PatchOp::Replace || step.op == PatchOp::Test) {
    auto value_member = operation.find("value");
    if (value_member == operation.end()) {
      return label + ": \"value\" is missing";
    }
    step.value = &*value_member;
  }
  return step;
}

// The RFC 6902 "add" of `value` at `path`; an empty string, or what prevented it.
std::string add_at(json& document, const Tokens& path, json value) {
  if (path.empty()) {
    document = std::move(value);
    return {};
  }
  json* parent = resolve(document, path.begin(), path.end() - 1);
  if (parent == nullptr) {
    return "the parent of the path does not exist";
  }
  const std::string& last = path.back();
  if (parent->is_object()) {
    (*parent)[last] = std::move(value);
    return {};
  }
  if (!parent->is_array()) {
    return "the parent of the path is not an object or an array";
  }
  if (last == "-") {
    parent->push_back(std::move(value));
    return {};
  }
  auto index = array_index(last);
  if (!index || *index > parent->size()) {
    return "array index \"" + last + "\" is out of range or not an index";
  }
  parent->insert(parent->begin() + static_cast<std::ptrdiff_t>(*index), std::move(value));
  return {};
}

std::string remove_at(json& document, const Tokens& path) {
  if (path.empty()) {
    return "the root cannot be removed";
  }
  json* parent = resolve(document, path.begin(), path.end() - 1);
  if (parent != nullptr && parent->is_object() && parent->erase(path.back()) == 1) {
    return {};
  }
  if (parent != nullptr && parent->is_array()) {
    auto index = array_index(path.back());
    if (index && *index < parent->size()) {
      parent->erase(*index);
      return {};
    }
  }
  return "path does not exist";
}

// Applies one checked operation; the error sentence's detail is left in `detail`.
PatchOutcome::Result apply_step(json& document, const PatchStep& step, std::string& detail) {
  switch (step.op) {
    case PatchOp::Add:
      detail = add_at(document, step.path, *step.value);
      break;
    case PatchOp::Remove:
      detail = remove_at(document, step.path);
      break;
    case PatchOp::Replace:
      if (json* target = resolve(document, step.path)) {
        *target = *step.value;
      } else {
        detail = "path does not exist";
      }
      break;
    case PatchOp::Move:
    case PatchOp::Copy: {
      json* source = resolve(document, step.from);
      if (source == nullptr) {
        detail = "\"from\" does not exist";
        break;
      }
      if (step.op == PatchOp::Copy) {
        detail = add_at(document, step.path, *source);
        break;
      }
      if (step.from.size() < step.path.size() && std::equal(step.from.begin(), step.from.end(), step.path.begin())) {
        detail = "\"from\" contains the path";
        break;
      }
      json moved = std::move(*source);
      detail = remove_at(document, step.from);
      if (detail.empty()) {
        detail = add_at(document, step.path, std::move(moved));
      }
      break;
    }
    case PatchOp::Test: {
      const json* target = resolve(document, step.path);
      if (target == nullptr) {
        detail = "path does not exist";
        return PatchOutcome::Result::TestFailed;
      }
      if (*target != *step.value) {
        detail = "the value differs";
        return PatchOutcome::Result::TestFailed;
      }
      break;
    }
  }
  return detail.empty() ? PatchOutcome::Result::Applied : PatchOutcome::Result::Malformed;
}

}  // namespace

std::vector<std::string> changed_pointers(const json& from, const json& to, const MergeKeys& keys) {
  std::vector<std::string> pointers;
  for (const auto& change : changes_between(from, to, keys)) {
    pointers.push_back(render(change.path, {&to, &from}));
  }
  return pointers;
}

MergeOutcome three_way_merge(const json& base, json current, const json& yours, const MergeKeys& keys) {
  auto their_changes = changes_between(base, current, keys);
  auto your_changes = changes_between(base, yours, keys);
  MergeOutcome outcome;
  std::set<std::string> conflicts;
  for (const auto& [mine, theirs] : overlapping(your_changes, their_changes)) {
    conflicts.insert(render(mine->path, {&yours, &current, &base}));
    conflicts.insert(render(theirs->path, {&yours, &current, &base}));
  }
  if (conflicts.empty()) {
    for (const auto& change : your_changes) {
      // Unreachable while the overlap check is right: a change's parent missing from current
      // means current changed an ancestor, which overlaps. Refusing keeps a wrong merge out.
      if (!apply_change(current, change)) {
        conflicts.insert(render(change.path, {&yours, &base}));
      }
    }
    outcome.document = std::move(current);
  }
  if (!conflicts.empty()) {
    outcome.document = nullptr;
    outcome.conflicts.assign(conflicts.begin(), conflicts.end());
    return outcome;
  }
  outcome.merged = true;
  for (const auto& change : your_changes) {
    outcome.applied.push_back(render(change.path, {&yours, &base}));
  }
  return outcome;
}

PatchOutcome apply_merge_patch(const json& document, const json& patch) {
  PatchOutcome outcome;
  outcome.document = document;
  outcome.document.merge_patch(patch);
  return outcome;
}

PatchOutcome apply_json_patch(const json& document, const json& patch) {
  PatchOutcome outcome;
  if (!patch.is_array()) {
    outcome.result = PatchOutcome::Result::Malformed;
    outcome.error = std::string("a JSON Patch is an array of operations, not ") + patch.type_name();
    return outcome;
  }
  std::vector<PatchStep> steps;
  steps.reserve(patch.size());
  for (std::size_t i = 0; i < patch.size(); ++i) {
    auto step = read_step(patch[i], i);
    if (auto* error = std::get_if<std::string>(&step)) {
      outcome.result = PatchOutcome::Result::Malformed;
      outcome.error = std::move(*error);
      return outcome;
    }
    steps.push_back(std::get<PatchStep>(std::move(step)));
  }
  outcome.document = document;
  for (const auto& step : steps) {
    std::string detail;
    outcome.result = apply_step(outcome.document, step, detail);
    if (outcome.result != PatchOutcome::Result::Applied) {
      outcome.document = nullptr;
      outcome.error = step.label + ": " + detail;
      return outcome;
    }
  }
  return outcome;
}

std::optional<nlohmann::json> parse_json_document(std::string_view text) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return std::nullopt;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
  if (value.is_discarded()) return std::nullopt;
  return value;
}

}  // namespace arbiter
