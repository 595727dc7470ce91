#include "document_store.h"

#include <algorithm>
#include <charconv>
#include <string_view>
#include <vector>

namespace legacy {
namespace {

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<std::uint64_t> numeric_id(std::string_view id) {
  std::uint64_t value = 0;
  if (!all_digits(id)) return std::nullopt;
  const auto [end, error] = std::from_chars(id.data(), id.data() + id.size(), value);
  if (error != std::errc() || end != id.data() + id.size()) return std::nullopt;
  return value;
}

std::vector<std::string_view> path_segments(std::string_view path) {
  std::vector<std::string_view> segments;
  if (path.empty() || path.front() != '/') return segments;
  path.remove_prefix(1);
  while (!path.empty()) {
    const std::size_t slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
    if (path.empty()) segments.emplace_back();  // a trailing slash leaves an empty segment
  }
  return segments;
}

// Ids come from the path, which may carry any byte: what is not UTF-8 is shown as U+FFFD.
Reply json_reply(int status, const json& document) {
  return Reply::json(status, document.dump(-1, ' ', false, json::error_handler_t::replace));
}

Reply created_reply(const std::string& location, const json& document) {
  Reply reply = json_reply(201, document);
  reply.response.headers.emplace_back("Location", location);
  return reply;
}

Reply method_not_allowed(const char* allowed) {
  Reply reply = error_reply(405);
  reply.response.headers.emplace_back("Allow", allowed);
  return reply;
}

std::optional<json> parse_body(const Request& request) {
  json document = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return std::nullopt;
  return document;
}

Reply invalid_json() { return error_reply(400, "request body is not valid JSON"); }

bool is_read(const Request& request) { return request.method == "GET" || request.method == "HEAD"; }

Reply serve_collection(DocumentStore& store, const std::string& collection, const Request& request) {
  if (is_read(request)) return json_reply(200, store.list(collection));
  if (request.method != "POST") return method_not_allowed("GET, HEAD, POST");
  auto document = parse_body(request);
  if (!document) return invalid_json();
  const std::string id = store.create(collection, std::move(*document));
  return created_reply("/" + collection + "/" + id, *store.get(collection, id));
}

Reply serve_document(DocumentStore& store, const std::string& collection, const std::string& id,
                     const Request& request) {
  if (is_read(request)) {
    const auto document = store.get(collection, id);
    return document ? json_reply(200, *document) : error_reply(404);
  }
  if (request.method == "DELETE") {
    return store.remove(collection, id) ? Reply::respond(Response{.status = 204}) : error_reply(404);
  }
  if (request.method == "PATCH") {
    if (!store.get(collection, id)) return error_reply(404);
    const auto patch = parse_body(request);
    if (!patch) return invalid_json();
    return json_reply(200, *store.merge_patch(collection, id, *patch));
  }
  if (request.method == "PUT") {
    auto document = parse_body(request);
    if (!document) return invalid_json();
    const bool created = store.put(collection, id, std::move(*document));
    const json stored = *store.get(collection, id);
    return created ? created_reply("/" + collection + "/" + id, stored) : json_reply(200, stored);
  }
  return method_not_allowed("GET, HEAD, PUT, PATCH, DELETE");
}

}  // namespace

bool DocumentStore::IdOrder::operator()(const std::string& a, const std::string& b) const {
  const bool a_numeric = all_digits(a);
  const bool b_numeric = all_digits(b);
  if (a_numeric != b_numeric) return a_numeric;  // numeric ids first
  if (a_numeric && a.size() != b.size()) return a.size() < b.size();
  return a < b;
}

DocumentStore::DocumentStore() {
  put("items", "1", {{"id", "1"}, {"name", "widget"}, {"count", 0}});
  put("accounts", "1", {{"id", "1"}, {"balance", 100}});
}

json& DocumentStore::store(Collection& collection, const std::string& id, json document) {
  // Objects carry their id, whatever the client sent as "id".
  if (document.is_object()) document["id"] = id;
  if (const auto number = numeric_id(id); number && *number >= collection.next_id) collection.next_id = *number + 1;
  return collection.documents[id] = std::move(document);
}

json DocumentStore::list(const std::string& collection) const {
  json documents = json::array();
  const auto found = collections_.find(collection);
  if (found == collections_.end()) return documents;
  for (const auto& [id, document] : found->second.documents) documents.push_back(document);
  return documents;
}

std::optional<json> DocumentStore::get(const std::string& collection, const std::string& id) const {
  const auto found = collections_.find(collection);
  if (found == collections_.end()) return std::nullopt;
  const auto document = found->second.documents.find(id);
  if (document == found->second.documents.end()) return std::nullopt;
  return document->second;
}

std::string DocumentStore::create(const std::string& collection, json document) {
  Collection& target = collections_[collection];
  const std::string id = std::to_string(target.next_id);
  store(target, id, std::move(document));
  return id;
}

bool DocumentStore::put(const std::string& collection, const std::string& id, json document) {
  Collection& target = collections_[collection];
  const bool created = !target.documents.contains(id);
  store(target, id, std::move(document));
  return created;
}

std::optional<json> DocumentStore::merge_patch(const std::string& collection, const std::string& id,
                                               const json& patch) {
  const auto found = collections_.find(collection);
  if (found == collections_.end()) return std::nullopt;
  const auto document = found->second.documents.find(id);
  if (document == found->second.documents.end()) return std::nullopt;
  json patched = document->second;
  patched.merge_patch(patch);
  return store(found->second, id, std::move(patched));
}

bool DocumentStore::remove(const std::string& collection, const std::string& id) {
  const auto found = collections_.find(collection);
  return found != collections_.end() && found->second.documents.erase(id) > 0;
}

json DocumentStore::index() const {
  json collections = json::object();
  for (const auto& [name, collection] : collections_) {
    collections[name] = {{"href", "/" + name}, {"count", collection.documents.size()}};
  }
  return {{"service", "legacy-api"}, {"collections", collections}};
}

Reply serve_documents(DocumentStore& store, const Request& request) {
  const std::vector<std::string_view> segments = path_segments(request.path);
  const bool well_formed = std::none_of(segments.begin(), segments.end(), [](std::string_view s) { return s.empty(); });
  if (segments.empty() && request.path == "/") {
    return is_read(request) ? json_reply(200, store.index()) : method_not_allowed("GET, HEAD");
  }
  if (!well_formed || segments.empty() || segments.size() > 2) return error_reply(404);
  const std::string collection(segments[0]);
  if (segments.size() == 1) return serve_collection(store, collection, request);
  return serve_document(store, collection, std::string(segments[1]), request);
}

}  // namespace legacy
