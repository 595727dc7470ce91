#include "policies/store/memory_history_store.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "policies/store/resource_hash.h"
#include "policies/store/sharding.h"

namespace arbiter {

namespace {

// ---- Strings packed into a version's block ----
//
// A string is a LEB128 header (packed length << 2 | form) and its packed bytes. The packing is
// a function of the text alone, so two texts are equal exactly when their packings are.

enum TextForm : std::uint8_t {
  kRawText = 0,
  kHexText = 1,        // lowercase hex of even length, two digits a byte
  kQuotedHexText = 2,  // '"' + such hex + '"' (an ETag)
};

// A table: tags are checked and packed on every record() (every read of a route with history).
constexpr std::array<std::int8_t, 256> kLowerHexValues = [] {
  std::array<std::int8_t, 256> values{};
  for (auto& value : values) value = -1;
  for (int c = '0'; c <= '9'; ++c) values[static_cast<std::size_t>(c)] = static_cast<std::int8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) values[static_cast<std::size_t>(c)] = static_cast<std::int8_t>(c - 'a' + 10);
  return values;
}();

int lower_hex_value(char c) noexcept { return kLowerHexValues[static_cast<unsigned char>(c)]; }

bool is_lower_hex(std::string_view text) noexcept {
  if (text.empty() || text.size() % 2 != 0) return false;
  return std::all_of(text.begin(), text.end(), [](char c) { return lower_hex_value(c) >= 0; });
}

TextForm form_of(std::string_view text) noexcept {
  if (is_lower_hex(text)) return kHexText;
  if (text.size() >= 4 && text.front() == '"' && text.back() == '"' && is_lower_hex(text.substr(1, text.size() - 2)))
    return kQuotedHexText;
  return kRawText;
}

std::size_t packed_length(std::string_view text, TextForm form) noexcept {
  switch (form) {
    case kHexText: return text.size() / 2;
    case kQuotedHexText: return (text.size() - 2) / 2;
    default: return text.size();
  }
}

std::size_t varint_size(std::uint64_t value) noexcept {
  std::size_t size = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++size;
  }
  return size;
}

char* write_varint(char* out, std::uint64_t value) noexcept {
  while (value >= 0x80) {
    *out++ = static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  *out++ = static_cast<char>(value);
  return out;
}

std::uint64_t read_varint(const char*& in) noexcept {
  std::uint64_t value = 0;
  for (int shift = 0;; shift += 7) {
    auto byte = static_cast<unsigned char>(*in++);
    value |= std::uint64_t{byte & 0x7fu} << shift;
    if (byte < 0x80) return value;
  }
}

std::size_t packed_size(std::string_view text, TextForm form) noexcept {
  std::size_t length = packed_length(text, form);
  return varint_size(length << 2 | form) + length;
}
std::size_t packed_size(std::string_view text) noexcept { return packed_size(text, form_of(text)); }

char* write_packed(char* out, std::string_view text, TextForm form) noexcept {
  std::size_t length = packed_length(text, form);
  out = write_varint(out, length << 2 | form);
  if (form == kRawText) {
    if (length > 0) std::memcpy(out, text.data(), length);  // an empty view's data() may be null
    return out + length;
  }
  std::string_view hex = form == kQuotedHexText ? text.substr(1, text.size() - 2) : text;
  for (std::size_t i = 0; i < length; ++i)
    *out++ = static_cast<char>(lower_hex_value(hex[2 * i]) << 4 | lower_hex_value(hex[2 * i + 1]));
  return out;
}
char* write_packed(char* out, std::string_view text) noexcept { return write_packed(out, text, form_of(text)); }

// A text packed for comparing with packed ones, on the stack when short (a tag, usually).
class PackedCopy {
 public:
  explicit PackedCopy(std::string_view text) {
    TextForm form = form_of(text);  // once: it reads every character
    std::size_t size = packed_size(text, form);
    char* out = short_;
    if (size > sizeof short_) {
      long_.resize(size);
      out = long_.data();
    }
    write_packed(out, text, form);
    bytes_ = std::string_view(out, size);
  }
  PackedCopy(const PackedCopy&) = delete;
  PackedCopy& operator=(const PackedCopy&) = delete;
  std::string_view bytes() const noexcept { return bytes_; }

 private:
  char short_[48];
  std::string long_;
  std::string_view bytes_;
};

// A packed string inside a block: its header and bytes.
struct PackedText {
  std::string_view bytes;  // header included; empty: absent
  TextForm form = kRawText;
  std::size_t length = 0;  // packed bytes after the header
  const char* data = nullptr;

  static PackedText read(const char*& in) noexcept {
    PackedText text;
    const char* start = in;
    std::uint64_t header = read_varint(in);
    text.form = static_cast<TextForm>(header & 3);
    text.length = static_cast<std::size_t>(header >> 2);
    text.data = in;
    in += text.length;
    text.bytes = std::string_view(start, static_cast<std::size_t>(in - start));
    return text;
  }

  std::size_t text_length() const noexcept {
    if (bytes.empty()) return 0;
    switch (form) {
      case kHexText: return 2 * length;
      case kQuotedHexText: return 2 * length + 2;
      default: return length;
    }
  }

  std::string text() const {
    if (bytes.empty()) return {};
    if (form == kRawText) return std::string(data, length);
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(text_length());
    if (form == kQuotedHexText) out += '"';
    for (std::size_t i = 0; i < length; ++i) {
      auto byte = static_cast<unsigned char>(data[i]);
      out += kDigits[byte >> 4];
      out += kDigits[byte & 15];
    }
    if (form == kQuotedHexText) out += '"';
    return out;
  }
};

// ---- Versions ----

constexpr std::array<std::string_view, 8> kMethodCodes = {"", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

enum VersionFlag : std::uint8_t {
  kBodyKept = 1,
  kHasAuthor = 2,          // method, request id and client follow (a write through Arbiter made it)
  kHasFence = 4,           // the fence, 8 bytes, opens the trailing data
  kWideSize = 8,           // the size, 8 bytes, follows the fence (`size` is then UINT32_MAX)
  kInlineContentType = 16, // the Content-Type is packed after the ETag (the interned table is full)
  kInlineMethod = 32,      // the method is packed after the Content-Type (not in kMethodCodes)
};

// One recorded version: this header, then in one allocation the trailing data:
// [fence][wide size][etag][content type][method][request id][client][body], each present as the
// flags say. Trivially destructible; allocated by make_version(), freed by free_version().
struct StoredVersion {
  StoredVersion* newer;    // the same resource's next version; null for its newest
  std::uint64_t sequence;  // the store's record order, across all resources
  std::int64_t time_ms;    // wall clock, milliseconds since the epoch
  std::uint32_t size;      // the body's length, unless kWideSize
  std::uint16_t content_type;
  std::uint8_t method;
  std::uint8_t flags;

  const char* trailing() const noexcept { return reinterpret_cast<const char*>(this + 1); }
  char* trailing() noexcept { return reinterpret_cast<char*>(this + 1); }
};
static_assert(sizeof(StoredVersion) == 32);

void free_version(StoredVersion* version) noexcept { ::operator delete(version); }

// Frees `chain` and every version it links to through `newer`.
void free_chain(StoredVersion* chain) noexcept {
  while (chain) {
    StoredVersion* next = chain->newer;
    free_version(chain);
    chain = next;
  }
}

// The trailing data of a version, read.
struct VersionFields {
  std::optional<std::uint64_t> fence;
  std::uint64_t size = 0;
  PackedText etag;
  PackedText content_type;  // when kInlineContentType
  PackedText method;        // when kInlineMethod
  PackedText request_id;
  PackedText client;
  std::string_view body;    // empty unless kBodyKept

  explicit VersionFields(const StoredVersion& version) noexcept {
    const char* in = version.trailing();
    auto read_u64 = [&in] {
      std::uint64_t value;
      std::memcpy(&value, in, sizeof value);
      in += sizeof value;
      return value;
    };
    if (version.flags & kHasFence) fence = read_u64();
    size = (version.flags & kWideSize) ? read_u64() : version.size;
    etag = PackedText::read(in);
    if (version.flags & kInlineContentType) content_type = PackedText::read(in);
    if (version.flags & kInlineMethod) method = PackedText::read(in);
    if (version.flags & kHasAuthor) {
      request_id = PackedText::read(in);
      client = PackedText::read(in);
    }
    if (version.flags & kBodyKept) body = std::string_view(in, static_cast<std::size_t>(size));
  }
};

// What a new version is made of. content_type_index: interned, or none (kInlineContentType).
struct VersionParts {
  std::int64_t time_ms = 0;
  std::string_view etag;
  std::string_view content_type;
  std::optional<std::uint16_t> content_type_index;
  std::optional<VersionAuthor> author;
  std::uint64_t size = 0;
  std::optional<std::string_view> body;  // nullopt: not kept
};

std::uint8_t method_code(std::string_view method) noexcept {
  for (std::size_t i = 1; i < kMethodCodes.size(); ++i)
    if (kMethodCodes[i] == method) return static_cast<std::uint8_t>(i);
  return 0;
}

// A new block; its sequence and `newer` are set when it is linked.
StoredVersion* make_version(const VersionParts& parts) {
  std::uint8_t flags = 0;
  std::uint8_t method = 0;
  std::size_t trailing = packed_size(parts.etag);
  if (parts.body) {
    flags |= kBodyKept;
    trailing += parts.body->size();
  }
  if (parts.size > UINT32_MAX) {
    flags |= kWideSize;
    trailing += 8;
  }
  if (!parts.content_type_index) {
    flags |= kInlineContentType;
    trailing += packed_size(parts.content_type);
  }
  if (parts.author) {
    flags |= kHasAuthor;
    trailing += packed_size(parts.author->request_id) + packed_size(parts.author->client);
    method = method_code(parts.author->method);
    if (method == 0 && !parts.author->method.empty()) {
      flags |= kInlineMethod;
      trailing += packed_size(parts.author->method);
    }
    if (parts.author->fence) {
      flags |= kHasFence;
      trailing += 8;
    }
  }
  auto* version = static_cast<StoredVersion*>(::operator new(sizeof(StoredVersion) + trailing));
  *version = StoredVersion{nullptr,
                           0,
                           parts.time_ms,
                           static_cast<std::uint32_t>(std::min<std::uint64_t>(parts.size, UINT32_MAX)),
                           parts.content_type_index.value_or(0),
                           method,
                           flags};
  char* out = version->trailing();
  auto write_u64 = [&out](std::uint64_t value) {
    std::memcpy(out, &value, sizeof value);
    out += sizeof value;
  };
  if (flags & kHasFence) write_u64(*parts.author->fence);
  if (flags & kWideSize) write_u64(parts.size);
  out = write_packed(out, parts.etag);
  if (flags & kInlineContentType) out = write_packed(out, parts.content_type);
  if (flags & kInlineMethod) out = write_packed(out, parts.author->method);
  if (flags & kHasAuthor) {
    out = write_packed(out, parts.author->request_id);
    out = write_packed(out, parts.author->client);
  }
  if (parts.body && !parts.body->empty()) std::memcpy(out, parts.body->data(), parts.body->size());
  return version;
}

std::int64_t to_milliseconds(WallTime time) noexcept {
  return std::chrono::floor<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

WallTime from_milliseconds(std::int64_t ms) noexcept {
  return WallTime(std::chrono::duration_cast<WallTime::duration>(std::chrono::milliseconds(ms)));
}

// ---- Resources and routes ----

struct ResourceHistory;
using ResourceNode = std::pair<const ResourceHash, ResourceHistory>;

// Retained versions are numbers [next_number - count, next_number); the ones before were dropped.
struct ResourceHistory {
  StoredVersion* oldest = nullptr;  // owned, with the whole list; null when count is 0
  StoredVersion* newest = nullptr;
  std::uint64_t next_number = 1;
  std::int64_t first_time_ms = 0;  // of version 1, which may be dropped
  // The owning route's list of its resources, by when their newest version was recorded.
  ResourceNode* recorded_newer = nullptr;
  ResourceNode* recorded_older = nullptr;
  std::uint32_t count = 0;
  std::uint32_t route = 0;  // index in State::routes

  std::uint64_t first_number() const noexcept { return next_number - count; }
  std::uint64_t dropped() const noexcept { return next_number - 1 - count; }
};

// Resources by their oldest retained version's record order (which is unique).
struct OldestVersionFirst {
  bool operator()(const ResourceNode* a, const ResourceNode* b) const noexcept {
    return a->second.oldest->sequence < b->second.oldest->sequence;
  }
};

struct RouteHistory {
  HistoryLimits limits;
  HistoryStats stats;
  // Its resources that have versions, so that begin() holds the route's oldest version.
  std::set<ResourceNode*, OldestVersionFirst> by_oldest;
  // Every resource it owns; least_recent's newest version is the oldest newest version.
  ResourceNode* least_recent = nullptr;
  ResourceNode* most_recent = nullptr;
};

}  // namespace

struct MemoryHistoryStore::State {
  mutable std::mutex mutex;
  std::uint64_t seed = random_hash_seed();
  std::uint64_t next_sequence = 1;
  std::unordered_map<ResourceHash, ResourceHistory, ResourceHashHasher> resources;
  std::map<std::string, std::uint32_t, std::less<>> route_index;
  std::vector<std::unique_ptr<RouteHistory>> routes;
  // Blocks unlinked under `mutex`, chained through `newer`, freed after it is released.
  StoredVersion* unlinked = nullptr;

  // Interned Content-Types: index -> text, never removed. Taken alone, or inside `mutex`.
  mutable std::mutex content_types_mutex;
  std::deque<std::string> content_types{std::string()};
  std::unordered_map<std::string_view, std::uint16_t> content_type_index{{std::string_view(), 0}};

  ~State() {
    for (auto& [key, resource] : resources) free_chain(resource.oldest);
  }

  // Content-Types longer than this stay in their versions, so that the table, which is never
  // emptied, holds at most about 12 MiB.
  static constexpr std::size_t kMaxInternedLength = 100;

  std::optional<std::uint16_t> intern(std::string_view content_type) {
    if (content_type.size() > kMaxInternedLength) return std::nullopt;
    std::lock_guard lock(content_types_mutex);
    if (auto it = content_type_index.find(content_type); it != content_type_index.end()) return it->second;
    if (content_types.size() > UINT16_MAX) return std::nullopt;
    auto index = static_cast<std::uint16_t>(content_types.size());
    content_type_index.emplace(content_types.emplace_back(content_type), index);
    return index;
  }

  std::string content_type_of(const StoredVersion& version, const VersionFields& fields) const {
    if (version.flags & kInlineContentType) return fields.content_type.text();
    std::lock_guard lock(content_types_mutex);
    return content_types[version.content_type];
  }

  // All below: the caller holds `mutex`.

  // What a version is charged against max_bytes (see the header).
  std::uint64_t charged_bytes(const StoredVersion& version) const {
    VersionFields fields(version);
    std::uint64_t bytes = fields.body.size() + fields.etag.text_length() + fields.request_id.text_length() +
                          fields.client.text_length();
    bytes += (version.flags & kInlineMethod) ? fields.method.text_length() : kMethodCodes[version.method].size();
    if (version.flags & kInlineContentType) {
      bytes += fields.content_type.text_length();
    } else {
      std::lock_guard lock(content_types_mutex);
      bytes += content_types[version.content_type].size();
    }
    return bytes;
  }

  VersionMeta meta_of(const StoredVersion& version, std::uint64_t number) const {
    VersionFields fields(version);
    VersionMeta meta;
    meta.number = number;
    meta.etag = fields.etag.text();
    meta.time = from_milliseconds(version.time_ms);
    meta.size = static_cast<std::size_t>(fields.size);
    meta.body_kept = (version.flags & kBodyKept) != 0;
    meta.content_type = content_type_of(version, fields);
    if (version.flags & kHasAuthor) {
      meta.method = (version.flags & kInlineMethod) ? fields.method.text() : std::string(kMethodCodes[version.method]);
      meta.request_id = fields.request_id.text();
      meta.client = fields.client.text();
      meta.fence = fields.fence;
    }
    return meta;
  }

  VersionLookup found(const StoredVersion& version, std::uint64_t number) const {
    VersionLookup lookup;
    lookup.find = VersionFind::Found;
    lookup.version.meta = meta_of(version, number);
    lookup.version.body = std::string(VersionFields(version).body);
    return lookup;
  }

  // The newest retained version of `resource` for which match(version) holds: Found, or Unknown.
  template <typename Match>
  VersionLookup newest_where(const ResourceHistory& resource, Match match) const {
    const StoredVersion* newest = nullptr;
    std::uint64_t newest_number = 0;
    std::uint64_t number = resource.first_number();
    for (const StoredVersion* version = resource.oldest; version; version = version->newer, ++number) {
      if (match(*version)) {
        newest = version;
        newest_number = number;
      }
    }
    return newest ? found(*newest, newest_number) : VersionLookup{};
  }

  const ResourceHistory* find(std::string_view resource) const {
    auto it = resources.find(resource_hash(resource, seed));
    return it == resources.end() ? nullptr : &it->second;
  }

  // The index in `routes` of the route named `name`, added when new.
  std::uint32_t route_named(std::string_view name) {
    auto it = route_index.find(name);
    if (it == route_index.end()) {
      it = route_index.emplace(std::string(name), static_cast<std::uint32_t>(routes.size())).first;
      routes.push_back(std::make_unique<RouteHistory>());
    }
    return it->second;
  }

  void unlink_recent(RouteHistory& route, ResourceNode* node) noexcept {
    ResourceHistory& resource = node->second;
    (resource.recorded_newer ? resource.recorded_newer->second.recorded_older : route.most_recent) =
        resource.recorded_older;
    (resource.recorded_older ? resource.recorded_older->second.recorded_newer : route.least_recent) =
        resource.recorded_newer;
    resource.recorded_newer = resource.recorded_older = nullptr;
  }

  void link_most_recent(RouteHistory& route, ResourceNode* node) noexcept {
    node->second.recorded_older = route.most_recent;
    node->second.recorded_newer = nullptr;
    if (route.most_recent) route.most_recent->second.recorded_newer = node;
    route.most_recent = node;
    if (!route.least_recent) route.least_recent = node;
  }

  // Drops the resource's oldest version, counted by the caller.
  void drop_oldest(RouteHistory& route, ResourceNode* node) {
    ResourceHistory& resource = node->second;
    route.by_oldest.erase(node);
    StoredVersion* dropped = resource.oldest;
    route.stats.bytes -= charged_bytes(*dropped);
    --route.stats.versions;
    resource.oldest = dropped->newer;
    if (!resource.oldest) resource.newest = nullptr;
    --resource.count;
    if (resource.count > 0) route.by_oldest.insert(node);
    dropped->newer = unlinked;
    unlinked = dropped;
  }

  void drop_resource(RouteHistory& route, ResourceNode* node) {
    while (node->second.count > 0) drop_oldest(route, node);
    unlink_recent(route, node);
    --route.stats.resources;
    ++route.stats.dropped_resources;
    resources.erase(node->first);
  }

  // Brings the route within its limits; `keep_version` (the one just recorded) stays.
  void enforce(RouteHistory& route, const StoredVersion* keep_version, bool trim_every_resource) {
    const HistoryLimits& limits = route.limits;
    std::size_t keep = std::max<std::size_t>(1, limits.keep);
    if (trim_every_resource) {
      for (ResourceNode* node = route.least_recent; node; node = node->second.recorded_newer) {
        while (node->second.count > keep) {
          drop_oldest(route, node);
          ++route.stats.dropped_keep;
        }
      }
    }
    while (route.stats.resources > std::max<std::size_t>(1, limits.max_resources) && route.least_recent &&
           (!keep_version || route.least_recent->second.newest != keep_version))
      drop_resource(route, route.least_recent);
    while (route.stats.bytes > limits.max_bytes && !route.by_oldest.empty()) {
      ResourceNode* node = *route.by_oldest.begin();
      if (node->second.oldest == keep_version) break;
      drop_oldest(route, node);
      ++route.stats.dropped_bytes;
    }
  }

  // The newest version already carries `etag`: gives it `author` when it has none.
  bool annotate(ResourceNode* node, const VersionInput& input) {
    ResourceHistory& resource = node->second;
    StoredVersion* old = resource.newest;
    if (!input.author || (old->flags & kHasAuthor)) return false;
    VersionFields fields(*old);
    std::string etag = fields.etag.text();
    std::string inline_content_type = fields.content_type.text();
    VersionParts parts;
    parts.time_ms = old->time_ms;
    parts.etag = etag;
    parts.content_type = inline_content_type;
    if (!(old->flags & kInlineContentType)) parts.content_type_index = old->content_type;
    parts.author = input.author;
    parts.size = fields.size;
    if (old->flags & kBodyKept) parts.body = fields.body;
    StoredVersion* annotated = make_version(parts);
    annotated->sequence = old->sequence;  // keeps its place in by_oldest
    RouteHistory& route = *routes[resource.route];
    route.stats.bytes += charged_bytes(*annotated);
    route.stats.bytes -= charged_bytes(*old);
    if (resource.oldest == old) {
      resource.oldest = annotated;
    } else {
      StoredVersion* before = resource.oldest;
      while (before->newer != old) before = before->newer;
      before->newer = annotated;
    }
    resource.newest = annotated;
    old->newer = unlinked;
    unlinked = old;
    enforce(route, annotated, false);
    return true;
  }
};

MemoryHistoryStore::MemoryHistoryStore() : state_(std::make_unique<State>()) {}

MemoryHistoryStore::~MemoryHistoryStore() = default;

namespace {

// The bytes a version made of `input` is charged (see the header), its body kept.
std::uint64_t charged_bytes_of(const VersionInput& input) noexcept {
  std::uint64_t bytes = input.body.size() + input.etag.size() + input.content_type.size();
  if (input.author) bytes += input.author->method.size() + input.author->request_id.size() + input.author->client.size();
  return bytes;
}

}  // namespace

RecordOutcome MemoryHistoryStore::record(const VersionInput& input, const HistoryLimits& limits) {
  State& state = *state_;
  const ResourceHash key = resource_hash(input.resource, state.seed);
  const PackedCopy packed_etag(input.etag);
  RecordOutcome outcome;
  // A new version is built outside the lock, after a first look found the tag new; the second
  // look links it, unless the tag was recorded in between.
  StoredVersion* built = nullptr;
  std::uint64_t built_bytes = 0;
  for (;;) {
    StoredVersion* to_free = nullptr;
    bool done = true;
    {
      std::lock_guard lock(state.mutex);
      std::uint32_t caller_index = state.route_named(input.route);
      RouteHistory& caller = *state.routes[caller_index];
      if (caller.limits != limits) {
        caller.limits = limits;
        state.enforce(caller, nullptr, true);
      }
      auto it = state.resources.find(key);
      ResourceNode* node = it == state.resources.end() ? nullptr : &*it;
      if (node && node->second.newest && VersionFields(*node->second.newest).etag.bytes == packed_etag.bytes()) {
        outcome.annotated = state.annotate(node, input);
        if (built) {
          built->newer = state.unlinked;
          state.unlinked = built;
        }
      } else if (!built) {
        done = false;
      } else {
        if (!node) {
          node = &*state.resources.try_emplace(key).first;
          node->second.route = caller_index;
          node->second.first_time_ms = built->time_ms;
          ++caller.stats.resources;
          state.link_most_recent(caller, node);
        }
        ResourceHistory& resource = node->second;
        RouteHistory& owner = *state.routes[resource.route];
        built->sequence = state.next_sequence++;
        if (resource.count == 0) {
          resource.oldest = resource.newest = built;
          owner.by_oldest.insert(node);
        } else {
          resource.newest->newer = built;
          resource.newest = built;
        }
        ++resource.count;
        outcome.number = resource.next_number++;
        ++owner.stats.versions;
        ++owner.stats.recorded;
        owner.stats.bytes += built_bytes;
        if (!(built->flags & kBodyKept)) ++owner.stats.bodies_omitted;
        state.unlink_recent(owner, node);
        state.link_most_recent(owner, node);
        std::size_t keep = std::max<std::size_t>(1, owner.limits.keep);
        while (resource.count > keep) {
          state.drop_oldest(owner, node);
          ++owner.stats.dropped_keep;
        }
        state.enforce(owner, built, false);
      }
      to_free = std::exchange(state.unlinked, nullptr);
    }
    free_chain(to_free);
    if (done) return outcome;

    VersionParts parts;
    parts.time_ms = to_milliseconds(input.time);
    parts.etag = input.etag;
    parts.content_type = input.content_type;
    parts.content_type_index = state.intern(input.content_type);
    parts.author = input.author;
    parts.size = input.body.size();
    built_bytes = charged_bytes_of(input);
    if (input.body.size() <= limits.max_version_bytes && built_bytes <= limits.max_bytes) {
      parts.body = input.body;
    } else {
      built_bytes -= input.body.size();
    }
    built = make_version(parts);
  }
}

HistoryListing MemoryHistoryStore::list(std::string_view resource_key) const {
  std::lock_guard lock(state_->mutex);
  HistoryListing listing;
  const ResourceHistory* resource = state_->find(resource_key);
  if (!resource) return listing;
  listing.known = true;
  listing.dropped = resource->dropped();
  listing.versions.reserve(resource->count);
  std::uint64_t number = resource->first_number();
  for (const StoredVersion* version = resource->oldest; version; version = version->newer)
    listing.versions.push_back(state_->meta_of(*version, number++));
  std::reverse(listing.versions.begin(), listing.versions.end());
  return listing;
}

VersionLookup MemoryHistoryStore::version(std::string_view resource_key, std::uint64_t number) const {
  std::lock_guard lock(state_->mutex);
  const ResourceHistory* resource = state_->find(resource_key);
  VersionLookup lookup;
  if (!resource || number == 0 || number >= resource->next_number) return lookup;
  if (number < resource->first_number()) {
    lookup.find = VersionFind::Dropped;
    return lookup;
  }
  const StoredVersion* version = resource->oldest;
  for (std::uint64_t n = resource->first_number(); n < number; ++n) version = version->newer;
  return state_->found(*version, number);
}

VersionLookup MemoryHistoryStore::find_tag(std::string_view resource_key, std::string_view etag) const {
  const PackedCopy packed_etag(etag);
  std::lock_guard lock(state_->mutex);
  const ResourceHistory* resource = state_->find(resource_key);
  if (!resource) return {};
  return state_->newest_where(*resource, [&](const StoredVersion& version) {
    return VersionFields(version).etag.bytes == packed_etag.bytes();
  });
}

VersionLookup MemoryHistoryStore::at_time(std::string_view resource_key, WallTime time) const {
  const std::int64_t time_ms = to_milliseconds(time);
  std::lock_guard lock(state_->mutex);
  const ResourceHistory* resource = state_->find(resource_key);
  if (!resource) return {};
  VersionLookup lookup =
      state_->newest_where(*resource, [&](const StoredVersion& version) { return version.time_ms <= time_ms; });
  if (lookup.find == VersionFind::Found) return lookup;
  if (resource->dropped() > 0 && time_ms >= resource->first_time_ms) lookup.find = VersionFind::Dropped;
  return lookup;
}

HistoryStats MemoryHistoryStore::stats(std::string_view route) const {
  std::lock_guard lock(state_->mutex);
  auto it = state_->route_index.find(route);
  return it == state_->route_index.end() ? HistoryStats{} : state_->routes[it->second]->stats;
}

}  // namespace arbiter
