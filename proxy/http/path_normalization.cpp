#include "proxy/http/path_normalization.h"
#include "proxy/http/hex.h"

#include <algorithm>

namespace arbiter {

namespace {

constexpr char kHexDigits[] = "0123456789ABCDEF";

bool is_unreserved(unsigned char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

// pchar minus unreserved and pct-encoded (RFC 3986 section 3.3): sub-delims, ':' and '@'.
bool is_bare_path_delimiter(unsigned char c) noexcept {
  switch (c) {
    case '!': case '$': case '&': case '\'': case '(': case ')': case '*': case '+': case ',': case ';': case '=':
    case ':': case '@':
      return true;
    default:
      return false;
  }
}

void append_encoded(std::string& out, unsigned char c) {
  out.push_back('%');
  out.push_back(kHexDigits[c >> 4]);
  out.push_back(kHexDigits[c & 0xF]);
}

// Appends the normal percent-encoding of one segment (no '/' in it) to `out`.
bool append_segment(std::string_view segment, std::string& out, std::string& why) {
  for (std::size_t i = 0; i < segment.size(); ++i) {
    auto c = static_cast<unsigned char>(segment[i]);
    if (c != '%') {
      if (is_unreserved(c) || is_bare_path_delimiter(c)) {
        out.push_back(static_cast<char>(c));
      } else {
        append_encoded(out, c);
      }
      continue;
    }
    int high = i + 1 < segment.size() ? hex_digit_value(segment[i + 1]) : -1;
    int low = i + 2 < segment.size() ? hex_digit_value(segment[i + 2]) : -1;
    if (high < 0 || low < 0) {
      why = "The request path has a '%' that is not followed by two hex digits; encode a literal '%' as %25.";
      return false;
    }
    auto decoded = static_cast<unsigned char>(high * 16 + low);
    if (decoded == 0) {
      why = "The request path contains %00 (a NUL byte), which no resource name may hold.";
      return false;
    }
    if (is_unreserved(decoded)) {
      out.push_back(static_cast<char>(decoded));
    } else {
      append_encoded(out, decoded);
    }
    i += 2;
  }
  return true;
}

}  // namespace

bool normalize_path(std::string_view path, std::string& out, std::string& why) {
  out.clear();
  // `path` begins with '/'; each piece after a '/' is a segment (the first one is before it).
  std::size_t position = path.starts_with('/') ? 1 : 0;
  bool ends_in_directory = true;  // the output must end with '/' ("/", "/a/", "/a/.")
  while (true) {
    std::size_t slash = path.find('/', position);
    bool last = slash == std::string_view::npos;
    std::string_view raw = path.substr(position, last ? std::string_view::npos : slash - position);
    // The segment is written in place, then taken back if it is empty or a dot segment.
    std::size_t mark = out.size();
    out.push_back('/');
    if (!append_segment(raw, out, why)) return false;
    std::string_view segment = std::string_view(out).substr(mark + 1);
    if (segment == "..") {
      out.resize(mark);
      if (out.empty()) {
        why = "The request path climbs above the root with '..'.";
        return false;
      }
      out.resize(out.rfind('/'));
      ends_in_directory = true;
    } else if (segment.empty() || segment == ".") {
      out.resize(mark);  // merged or removed; only a last one leaves its mark, the trailing '/'
      if (last) ends_in_directory = true;
    } else {
      ends_in_directory = false;
    }
    if (last) break;
    position = slash + 1;
  }
  if (ends_in_directory) out.push_back('/');
  return true;
}

void lower_case_path(std::string_view path, std::string& out) {
  out.assign(path);
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '%') {
      i += 2;  // a normal path's '%' is always followed by two (uppercase) hex digits
    } else if (out[i] >= 'A' && out[i] <= 'Z') {
      out[i] = static_cast<char>(out[i] - 'A' + 'a');
    }
  }
}

bool normalize_target(std::string_view target, bool case_insensitive_paths, NormalTarget& out, std::string& why) {
  std::size_t query_at = std::min(target.find('?'), target.size());
  if (!normalize_path(target.substr(0, query_at), out.target, why)) return false;
  out.path_length = out.target.size();
  out.target.append(target.substr(query_at));
  out.routed_path.clear();
  if (case_insensitive_paths) lower_case_path(out.path(), out.routed_path);
  return true;
}

}  // namespace arbiter
