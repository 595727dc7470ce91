#pragma once
// WebDAV's If request field (RFC 4918 section 10.4): lists of conditions on state tokens (lock
// tokens) and entity tags, optionally tagged with the resource they apply to.
//
//   If = ( 1*No-tag-list ) | ( 1*Tagged-list )
//   No-tag-list = List ; Tagged-list = Resource-Tag 1*List ; List = "(" 1*Condition ")"
//   Condition = ["Not"] ( State-token | "[" entity-tag "]" ) ; State-token = Coded-URL = "<" URI ">"
//
// The field is true when any list that applies to the request's resource is true, and a list is
// true when each of its conditions is. Every state token anywhere in the field is "submitted"
// (section 10.4.1), whatever its list evaluates to.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace arbiter {

struct IfCondition {
  bool negated = false;  // "Not"
  bool is_etag = false;  // "[" entity-tag "]"; else a state token
  std::string value;     // the state token's URI without <>, or the entity tag with its quotes (and W/)
};

struct IfList {
  std::optional<std::string> resource;  // the Resource-Tag without <>, for a tagged list
  std::vector<IfCondition> conditions;
};

// The lists of an If field value; nullopt when it does not follow the grammar above (an empty
// list, an unclosed bracket, a condition that is neither, a mix of tagged and untagged lists).
std::optional<std::vector<IfList>> parse_if_header(std::string_view value);

// Whether a list tagged with `tag` applies to the resource at `path` (the request's normalised
// path): the tag is an absolute URI or an absolute path, compared by its path, without the query.
// An untagged list always applies.
bool if_list_applies(const IfList& list, std::string_view path);

}  // namespace arbiter
