#include "proxy/control/handler_registry.h"

#include <algorithm>
#include <stdexcept>

namespace arbiter {

namespace {

bool takes(const HandlerRegistry::Entry& entry, std::string_view method) {
  for (const std::string& taken : entry.methods) {
    if (taken == method || (method == "HEAD" && taken == "GET")) return true;
  }
  return false;
}

bool only_get(const std::vector<std::string>& methods) { return methods.size() == 1 && methods[0] == "GET"; }

}  // namespace

void HandlerRegistry::add(std::string path, PathMatch match, std::vector<std::string> methods, std::string summary,
                          std::shared_ptr<LocalHandler> handler, std::string scope, std::size_t body_limit) {
  if (!path.starts_with('/')) throw std::invalid_argument("local handler path '" + path + "' must start with '/'");
  if (methods.empty()) throw std::invalid_argument("local handler " + path + " takes no method");
  for (const Entry& entry : entries_) {
    if (entry.path != path || entry.match != match) continue;
    for (const std::string& method : methods) {
      if (takes(entry, method)) {
        throw std::invalid_argument("local handler " + method + " " + path + " is registered twice");
      }
    }
  }
  entries_.push_back(Entry{std::move(path), match, std::move(methods), std::move(summary), std::move(handler),
                           std::move(scope), body_limit});
}

HandlerRegistry::Lookup HandlerRegistry::find(std::string_view method, std::string_view path) const {
  // The most specific path any entry takes: an exact one, else the longest prefix.
  const Entry* best = nullptr;
  for (const Entry& entry : entries_) {
    bool matches = entry.match == PathMatch::Exact ? path == entry.path : path.starts_with(entry.path);
    if (!matches) continue;
    if (best == nullptr || (entry.match == PathMatch::Exact && best->match == PathMatch::Prefix) ||
        (entry.match == best->match && entry.path.size() > best->path.size())) {
      best = &entry;
    }
  }
  Lookup lookup;
  if (best == nullptr) return lookup;
  std::vector<std::string> allowed;
  for (const Entry& entry : entries_) {
    if (entry.path != best->path || entry.match != best->match) continue;
    if (takes(entry, method)) {
      lookup.outcome = Outcome::Found;
      lookup.entry = &entry;
      return lookup;
    }
    allowed.insert(allowed.end(), entry.methods.begin(), entry.methods.end());
  }
  lookup.outcome = Outcome::MethodNotAllowed;
  lookup.allow = allow_text(allowed);
  return lookup;
}

void HandlerRegistry::dispatch(const LocalRequest& request, LocalResponder& responder) const {
  Lookup lookup = find(request.method, request.path.substr(request.mount.size()));
  switch (lookup.outcome) {
    case Outcome::Found:
      lookup.entry->handler->handle(request, responder);
      return;
    case Outcome::MethodNotAllowed:
      responder.reply_problem(Problem::make("method-not-allowed", 405, "Method not allowed",
                                            std::string(request.path) + " takes " + lookup.allow + ", not " +
                                                std::string(request.method) + "."),
                              HeaderList{{"Allow", lookup.allow}});
      return;
    case Outcome::NotFound: {
      std::size_t count = entries_.size();
      std::string there =
          count == 0 ? "there are none" : (count == 1 ? "there is " : "there are ") + listing(request.mount);
      responder.reply_problem(Problem::make(
          "not-found", 404, "Not found", "No " + name_ + " endpoint " + std::string(request.path) + "; " + there + "."));
      return;
    }
  }
}

std::string HandlerRegistry::listing(std::string_view mount) const {
  std::string out;
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    const Entry& entry = entries_[i];
    if (i > 0) out += i + 1 == entries_.size() ? " and " : ", ";
    if (!only_get(entry.methods)) {
      for (std::size_t m = 0; m < entry.methods.size(); ++m) out += (m > 0 ? "/" : "") + entry.methods[m];
      out += ' ';
    }
    out += mount;
    out += entry.path;
    if (entry.match == PathMatch::Prefix) out += '*';
  }
  return out;
}

std::vector<std::string> HandlerRegistry::allowed(const std::vector<std::string>& methods) {
  std::vector<std::string> listed;
  auto list = [&](const std::string& method) {
    if (std::find(listed.begin(), listed.end(), method) == listed.end()) listed.push_back(method);
  };
  for (const std::string& method : methods) {
    list(method);
    if (method == "GET") list("HEAD");
  }
  return listed;
}

std::string HandlerRegistry::allow_text(const std::vector<std::string>& methods) {
  std::string out;
  for (const std::string& method : allowed(methods)) out += (out.empty() ? "" : ", ") + method;
  return out;
}

}  // namespace arbiter
