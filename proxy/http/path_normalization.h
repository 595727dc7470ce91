#pragma once
// The one normal form of a request path, computed once per request before routing, so that
// every spelling of a path meets the same route and the same resource (RFC 3986 section 6.2.2):
//
// - percent-encoding: an encoded unreserved character (ALPHA DIGIT - . _ ~) is decoded, any
//   other encoded octet keeps its encoding with uppercase hex ("%2f" -> "%2F": a reserved
//   character such as '/' stays data, never a separator); an octet that may not appear bare
//   in a path (non-ASCII, controls, '"', '<', '\\', ...) is encoded;
// - empty segments are merged, as nginx's default "merge_slashes on" ("//a///b" -> "/a/b");
//   a trailing slash is kept ("/a/" stays "/a/");
// - dot segments ("." and "..", also when spelled "%2E") are removed.
//
// Refused: a ".." that would climb above the root, "%00", a '%' not followed by two hex digits.

#include <string>
#include <string_view>

namespace arbiter {

// Writes the normal form of `path` (a request target's path: from its leading '/' to before
// '?') to `out` and returns true; or returns false with `why` set to a sentence for the client.
bool normalize_path(std::string_view path, std::string& out, std::string& why);

// The path as routes and resource keys see it under [server] case_insensitive_paths: ASCII
// letters lower-cased, the hex digits of percent-encodings left uppercase. `path` is normal.
void lower_case_path(std::string_view path, std::string& out);

// A request target with its path in normal form, as the proxy routes it: the normal path
// followed by the query as sent, and the path lower-cased when paths are case-insensitive.
// Kept per connection and refilled per request, its strings keep their capacity.
struct NormalTarget {
  std::string target;         // the normal path, then the query as sent ('?' included)
  std::size_t path_length = 0;
  std::string routed_path;    // lower_case_path(path()) under case_insensitive_paths, else empty

  std::string_view path() const noexcept { return std::string_view(target).substr(0, path_length); }
  // After '?', without it; empty when there is none.
  std::string_view query() const noexcept {
    std::string_view rest = std::string_view(target).substr(path_length);
    return rest.empty() ? rest : rest.substr(1);
  }
  // What routes and resource keys see: routed_path, or the path itself.
  std::string_view routed() const noexcept { return routed_path.empty() ? path() : std::string_view(routed_path); }
};

// Fills `out` from a request target in origin form ("/path?query"); or returns false with `why`
// set as normalize_path does (`out` is then unspecified).
bool normalize_target(std::string_view target, bool case_insensitive_paths, NormalTarget& out, std::string& why);

}  // namespace arbiter
