#include "proxy/exchange/router.h"

#include <algorithm>
#include <stdexcept>
#include <unordered_map>

#include "proxy/http/path_normalization.h"

namespace arbiter {

namespace {

bool is_param_name_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

std::invalid_argument bad_pattern(std::string_view pattern, std::string_view problem) {
  return std::invalid_argument("path pattern \"" + std::string(pattern) + "\": " + std::string(problem));
}

// HEAD is taken wherever GET is: a HEAD response is the GET response without its body
// (RFC 9110 section 9.3.2), and nginx and most frameworks route it that way.
bool takes_method(const std::vector<std::string>& methods, std::string_view method) {
  if (methods.empty()) return true;
  for (const std::string& m : methods) {
    if (m == method || (method == "HEAD" && m == "GET")) return true;
  }
  return false;
}

// An empty list is every method, which only an earlier route taking every method covers.
bool takes_every_method(const std::vector<std::string>& earlier, const std::vector<std::string>& later) {
  return later.empty() ? earlier.empty()
                       : std::all_of(later.begin(), later.end(),
                                     [&](const std::string& m) { return takes_method(earlier, m); });
}

}  // namespace

PathPattern::PathPattern(std::string_view pattern, bool lower_case_literals) : text_(pattern) {
  if (!pattern.starts_with('/')) throw bad_pattern(pattern, "must start with '/'");
  // The query and fragment are never part of the path that is matched, so a pattern holding
  // them could never match anything.
  if (pattern.find_first_of("?#") != std::string_view::npos) {
    throw bad_pattern(pattern, "'?' and '#' cannot appear: the query is not part of the matched path");
  }
  std::string_view rest = pattern.substr(1);
  while (true) {
    std::size_t slash = rest.find('/');
    std::string_view piece = rest.substr(0, slash);
    bool last = slash == std::string_view::npos;
    if (piece == "*") {
      if (!last) throw bad_pattern(pattern, "'*' may only be the last segment");
      segments_.push_back({Kind::Rest, ""});
    } else if (piece.starts_with('{') && piece.ends_with('}') && piece.size() >= 2) {
      std::string_view name = piece.substr(1, piece.size() - 2);
      if (name.empty()) throw bad_pattern(pattern, "a parameter needs a name, e.g. {id}");
      if (!std::all_of(name.begin(), name.end(), is_param_name_char)) {
        throw bad_pattern(pattern, "parameter name \"" + std::string(name) +
                                       "\" may contain only letters, digits and '_'");
      }
      for (const Segment& earlier : segments_) {
        if (earlier.kind == Kind::Param && earlier.text == name) {
          throw bad_pattern(pattern, "parameter {" + std::string(name) + "} appears twice");
        }
      }
      segments_.push_back({Kind::Param, std::string(name)});
    } else {
      if (piece.find_first_of("{}*") != std::string_view::npos) {
        throw bad_pattern(pattern, "segment \"" + std::string(piece) +
                                       "\": '{', '}' and '*' may only stand for a whole segment, as {name} or *");
      }
      // Requests are matched in normal form (proxy/http/path_normalization.h), so a literal is
      // too: "%7e" means "~", "%2f" means "%2F". An empty or dot segment never survives
      // normalisation (bar a trailing '/'), so a pattern with one could never match.
      std::string normal, why;
      if (!normalize_path("/" + std::string(piece), normal, why)) {
        throw bad_pattern(pattern, "segment \"" + std::string(piece) + "\": " + why);
      }
      if (normal == "/" && !(piece.empty() && last)) {
        throw bad_pattern(pattern, "segment \"" + std::string(piece) +
                                       "\" could never match: request paths are normalised first ('//' merged, "
                                       "'.' and '..' removed)");
      }
      segments_.push_back({Kind::Literal, normal.substr(1)});
      if (lower_case_literals) lower_case_path(normal.substr(1), segments_.back().text);
    }
    if (last) break;
    rest.remove_prefix(slash + 1);
  }
}

bool PathPattern::match(std::string_view path, std::vector<PathParam>& params) const {
  if (!path.starts_with('/')) return false;
  const std::size_t params_before = params.size();
  auto fail = [&] {
    params.resize(params_before);  // shrinking never allocates
    return false;
  };
  // A path always has at least one segment: "/" is one empty segment.
  std::size_t position = 1;
  bool segments_left = true;
  for (const Segment& segment : segments_) {
    if (segment.kind == Kind::Rest) return true;
    if (!segments_left) return fail();
    std::size_t slash = path.find('/', position);
    std::size_t end = slash == std::string_view::npos ? path.size() : slash;
    std::string_view piece = path.substr(position, end - position);
    if (segment.kind == Kind::Literal) {
      if (piece != segment.text) return fail();
    } else {
      if (piece.empty()) return fail();
      params.push_back({segment.text, piece});
    }
    segments_left = slash != std::string_view::npos;
    position = end + 1;
  }
  return segments_left ? fail() : true;
}

// Segment by segment, each of this pattern's segments must accept every segment the narrower
// one can match there. This is exact: a pattern's paths are all combinations of its segments'.
bool PathPattern::covers(const PathPattern& narrower) const {
  std::size_t i = 0;
  for (; i < segments_.size(); ++i) {
    const Segment& wide = segments_[i];
    if (wide.kind == Kind::Rest) return true;
    // The narrower pattern has ended (it does not match paths this long) or can end here
    // (its '*' matches nothing more), where `wide` still needs a segment.
    if (i >= narrower.segments_.size()) return false;
    const Segment& narrow = narrower.segments_[i];
    switch (wide.kind) {
      case Kind::Literal:
        if (narrow.kind != Kind::Literal || narrow.text != wide.text) return false;
        break;
      case Kind::Param:
        if (narrow.kind == Kind::Rest || (narrow.kind == Kind::Literal && narrow.text.empty())) return false;
        break;
      case Kind::Rest:
        break;
    }
  }
  return i == narrower.segments_.size();
}

Router::Router(const std::vector<RouteConfig>& routes, bool case_insensitive) {
  entries_.reserve(routes.size());
  for (const RouteConfig& route : routes) {
    try {
      entries_.push_back({PathPattern(route.path, case_insensitive), route.methods});
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("route '" + route.name + "': " + e.what());
    }
  }
}

Router::Outcome Router::match(std::string_view method, std::string_view path, RouteMatch& match,
                              std::string* allowed) const {
  bool some_path_matched = false;
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    match.params.clear();
    if (!entries_[i].pattern.match(path, match.params)) continue;
    if (takes_method(entries_[i].methods, method)) {
      match.route_index = i;
      return Outcome::Matched;
    }
    some_path_matched = true;
  }
  match.params.clear();
  if (!some_path_matched) return Outcome::NotFound;
  if (allowed) {
    // Only on this error path, so the allocations here cost the common case nothing.
    std::vector<std::string_view> methods;
    for (const Entry& entry : entries_) {
      if (!entry.pattern.match(path, match.params)) continue;
      for (const std::string& m : entry.methods) {
        methods.push_back(m);
        if (m == "GET") methods.push_back("HEAD");
      }
    }
    match.params.clear();
    std::sort(methods.begin(), methods.end());
    methods.erase(std::unique(methods.begin(), methods.end()), methods.end());
    allowed->clear();
    for (std::string_view m : methods) {
      if (!allowed->empty()) allowed->append(", ");
      allowed->append(m);
    }
  }
  return Outcome::MethodNotAllowed;
}

// The earlier routes' patterns form a trie by segment; a route is checked against the nodes
// whose patterns can cover it (the literal child with its segment's text, the {param} child,
// and every '*' on the way: at most a few per level) instead of against every earlier route.
std::vector<std::optional<std::size_t>> Router::shadowing() const {
  struct Node {
    std::unordered_map<std::string, std::size_t> literals;  // child node index by segment text
    std::size_t param = 0;                                  // child node index; 0 = none
    std::vector<std::size_t> ending_here;  // routes whose pattern ends at this node, in order
    std::vector<std::size_t> rest_here;    // routes whose '*' is here, in order
  };
  std::vector<Node> nodes(1);
  std::vector<std::optional<std::size_t>> result(entries_.size());
  using Kind = PathPattern::Kind;
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    const Entry& later = entries_[i];
    const auto& segments = later.pattern.segments_;
    std::optional<std::size_t>& best = result[i];
    // The first route of an ascending list that takes every method route i takes.
    auto consider = [&](const std::vector<std::size_t>& routes) {
      for (std::size_t j : routes) {
        if (best && j >= *best) return;
        if (takes_every_method(entries_[j].methods, later.methods)) {
          best = j;
          return;
        }
      }
    };
    // Depth-first over (node, segment index); the pairs are few (see above).
    std::vector<std::pair<std::size_t, std::size_t>> pending{{0, 0}};
    while (!pending.empty()) {
      auto [node_index, k] = pending.back();
      pending.pop_back();
      const Node& node = nodes[node_index];
      consider(node.rest_here);
      if (k == segments.size()) {
        consider(node.ending_here);
        continue;
      }
      const PathPattern::Segment& segment = segments[k];
      if (segment.kind == Kind::Rest) continue;  // only a '*' covers a '*'
      if (segment.kind == Kind::Literal) {
        if (auto child = node.literals.find(segment.text); child != node.literals.end()) {
          pending.emplace_back(child->second, k + 1);
        }
      }
      bool param_covers = segment.kind == Kind::Param || !segment.text.empty();
      if (param_covers && node.param != 0) pending.emplace_back(node.param, k + 1);
    }
    // Route i joins the trie for the routes after it.
    std::size_t at = 0;
    bool rest = false;
    for (const PathPattern::Segment& segment : segments) {
      if (segment.kind == Kind::Rest) {
        nodes[at].rest_here.push_back(i);
        rest = true;
        break;
      }
      std::size_t next = segment.kind == Kind::Param ? nodes[at].param : 0;
      if (segment.kind == Kind::Literal) {
        auto found = nodes[at].literals.find(segment.text);
        if (found != nodes[at].literals.end()) next = found->second;
      }
      if (next == 0) {
        next = nodes.size();
        nodes.emplace_back();
        if (segment.kind == Kind::Param) {
          nodes[at].param = next;
        } else {
          nodes[at].literals.emplace(segment.text, next);
        }
      }
      at = next;
    }
    if (!rest) nodes[at].ending_here.push_back(i);
  }
  return result;
}

}  // namespace arbiter
