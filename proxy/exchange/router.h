#pragma once
// Route matching: first match wins.
//
// Path patterns: "/items/{id}" — literal segments match exactly, "{name}" matches exactly one
// non-empty segment and captures it, a trailing "*" matches the rest of the path (zero or
// more segments). The query string never takes part in matching. Paths are matched as
// normalised (proxy/http/path_normalization.h), lower-cased first under case_insensitive_paths.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policies/policy.h"
#include "proxy/config/config.h"

namespace arbiter {

class PathPattern {
 public:
  // Throws std::invalid_argument with a readable message for a malformed pattern
  // (no leading '/', '*' not last, empty or duplicate {name}, an empty or dot segment other
  // than a trailing '/', which no normalised path has, ...). Literal segments are taken in
  // normal form ("/%7eu/a%2fb" is "/~u/a%2Fb"). lower_case_literals: the literal segments
  // match lower-cased paths (case_insensitive_paths); {name}s keep their case.
  explicit PathPattern(std::string_view pattern, bool lower_case_literals = false);

  // On a match, appends the captures to params (views into `path` and into this pattern).
  bool match(std::string_view path, std::vector<PathParam>& params) const;
  // True if this pattern matches every path that `narrower` matches.
  bool covers(const PathPattern& narrower) const;
  const std::string& text() const noexcept { return text_; }

 private:
  friend class Router;
  enum class Kind : std::uint8_t { Literal, Param, Rest };
  struct Segment {
    Kind kind;
    std::string text;  // literal text or param name
  };
  std::string text_;
  std::vector<Segment> segments_;
};

struct RouteMatch {
  std::size_t route_index = 0;     // into the routes given to the Router
  std::vector<PathParam> params;
};

class Router {
 public:
  // Throws std::invalid_argument naming the route for a malformed pattern. case_insensitive:
  // match() is given lower-cased paths ([server] case_insensitive_paths).
  explicit Router(const std::vector<RouteConfig>& routes, bool case_insensitive = false);

  enum class Outcome { Matched, NotFound, MethodNotAllowed };
  // Matched: `match` is filled. MethodNotAllowed: some route's path matched but none of them
  // allows the method; `allowed` lists the methods those routes take (for an Allow field).
  Outcome match(std::string_view method, std::string_view path, RouteMatch& match,
                std::string* allowed = nullptr) const;

  // For every route i: the index of the earliest route before it that makes it unreachable
  // (whose pattern covers() route i's and which takes every method route i takes), or nullopt.
  // About linear time (a trie of the patterns' segments instead of comparing every pair).
  std::vector<std::optional<std::size_t>> shadowing() const;

 private:
  struct Entry {
    PathPattern pattern;
    std::vector<std::string> methods;  // empty = any
  };
  std::vector<Entry> entries_;
};

}  // namespace arbiter
