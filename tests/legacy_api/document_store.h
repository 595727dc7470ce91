#pragma once
// The legacy API's data: JSON documents addressed as /{collection}/{id}, kept in memory.
// Deliberately without ETags or Last-Modified: validators are what the proxy adds.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "http_server.h"

namespace legacy {

using nlohmann::json;

class DocumentStore {
 public:
  // Seeded with /items/1 and /accounts/1, which the README demo uses.
  DocumentStore();

  json list(const std::string& collection) const;  // array, in id order (numeric ids numerically)
  std::optional<json> get(const std::string& collection, const std::string& id) const;
  // Returns the new id.
  std::string create(const std::string& collection, json document);
  // Returns true if the document was created rather than replaced.
  bool put(const std::string& collection, const std::string& id, json document);
  // RFC 7396; nullopt if there is no such document.
  std::optional<json> merge_patch(const std::string& collection, const std::string& id, const json& patch);
  bool remove(const std::string& collection, const std::string& id);
  json index() const;  // what GET / shows

 private:
  struct IdOrder {
    bool operator()(const std::string& a, const std::string& b) const;
  };
  struct Collection {
    std::map<std::string, json, IdOrder> documents;
    std::uint64_t next_id = 1;
  };

  json& store(Collection& collection, const std::string& id, json document);

  std::map<std::string, Collection> collections_;
};

// GET /, and /{collection}[/{id}] with the methods each supports.
Reply serve_documents(DocumentStore& store, const Request& request);

}  // namespace legacy
