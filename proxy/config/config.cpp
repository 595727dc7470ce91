#include "proxy/config/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <span>
#include <thread>
#include <unordered_map>
#include <utility>

#include <toml++/toml.h>

#include "proxy/exchange/router.h"
#include "proxy/http/address.h"

namespace arbiter {

// ---- Values with units ----

namespace {

struct Unit {
  std::string_view suffix;
  std::uint64_t scale;
};

constexpr Unit kDurationUnits[] = {{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}};
constexpr Unit kSizeUnits[] = {{"", 1},           {"B", 1},           {"KB", 1000},
                               {"kB", 1000},      {"MB", 1'000'000},  {"GB", 1'000'000'000},
                               {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}};

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// Multiplies and adds without wrapping around; false on overflow.
bool accumulate(std::uint64_t& total, std::uint64_t factor, std::uint64_t addend) noexcept {
  if (factor != 0 && total > (std::numeric_limits<std::uint64_t>::max() - addend) / factor) return false;
  total = total * factor + addend;
  return true;
}

// "DIGITS[.DIGITS]UNIT" in the unit's base: 1.5 with scale 1000 is 1500. The result must be a
// whole number of base units, so "0.1ms" is refused rather than silently rounded down to 0.
std::optional<std::uint64_t> parse_scaled(std::string_view text, std::span<const Unit> units) {
  std::size_t i = 0;
  std::uint64_t whole = 0;
  if (text.empty() || !is_digit(text[0])) return std::nullopt;  // also refuses a sign
  for (; i < text.size() && is_digit(text[i]); ++i) {
    if (!accumulate(whole, 10, static_cast<std::uint64_t>(text[i] - '0'))) return std::nullopt;
  }
  std::string_view fraction_digits;
  if (i < text.size() && text[i] == '.') {
    std::size_t start = ++i;
    while (i < text.size() && is_digit(text[i])) ++i;
    if (i == start) return std::nullopt;  // "1.s"
    fraction_digits = text.substr(start, i - start);
    while (!fraction_digits.empty() && fraction_digits.back() == '0') fraction_digits.remove_suffix(1);
  }
  std::string_view suffix = text.substr(i);
  auto unit = std::find_if(std::begin(units), std::end(units),
                           [&](const Unit& u) { return u.suffix == suffix; });
  if (unit == std::end(units)) return std::nullopt;

  std::uint64_t total = whole;
  if (!accumulate(total, unit->scale, 0)) return std::nullopt;
  // Nine significant fraction digits keep fraction * scale within 64 bits for every unit above;
  // a longer fraction is finer than the base unit anyway.
  if (fraction_digits.size() > 9) return std::nullopt;
  std::uint64_t fraction = 0, denominator = 1;
  for (char c : fraction_digits) {
    fraction = fraction * 10 + static_cast<std::uint64_t>(c - '0');
    denominator *= 10;
  }
  std::uint64_t scaled_fraction = fraction * unit->scale;
  if (scaled_fraction % denominator != 0) return std::nullopt;
  if (!accumulate(total, 1, scaled_fraction / denominator)) return std::nullopt;
  return total;
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned port = 0;
  for (char c : text) {
    if (!is_digit(c)) return std::nullopt;
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(port);
}


}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  auto milliseconds = parse_scaled(text, kDurationUnits);
  if (!milliseconds || *milliseconds > static_cast<std::uint64_t>(std::numeric_limits<Duration::rep>::max())) {
    return std::nullopt;
  }
  return Duration(static_cast<Duration::rep>(*milliseconds));
}

std::optional<std::uint64_t> parse_size(std::string_view text) { return parse_scaled(text, kSizeUnits); }

std::optional<Rate> parse_rate(std::string_view text) {
  std::size_t slash = text.find('/');
  if (slash == 0 || slash == std::string_view::npos) return std::nullopt;
  Rate rate;
  for (char c : text.substr(0, slash)) {
    if (!is_digit(c) || !accumulate(rate.count, 10, static_cast<std::uint64_t>(c - '0'))) return std::nullopt;
  }
  std::string_view unit = text.substr(slash + 1);
  if (unit == "s") {
    rate.per = std::chrono::seconds(1);
  } else if (unit == "m") {
    rate.per = std::chrono::minutes(1);
  } else if (unit == "h") {
    rate.per = std::chrono::hours(1);
  } else {
    return std::nullopt;
  }
  return rate;
}

std::optional<SocketAddress> parse_socket_address(std::string_view text) {
  std::string_view host, port_text;
  if (text.starts_with('[')) {
    std::size_t close = text.find(']');
    if (close == std::string_view::npos || text.substr(close + 1, 1) != ":") return std::nullopt;
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
    in6_addr ignored;
    if (!parse_ip_address(host, AF_INET6, &ignored)) return std::nullopt;
  } else {
    // An IPv6 address needs brackets, or its last group could not be told from the port.
    std::size_t colon = text.find(':');
    if (colon == std::string_view::npos || text.find(':', colon + 1) != std::string_view::npos) {
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    in_addr ignored;
    if (host != "localhost" && !parse_ip_address(host, AF_INET, &ignored)) return std::nullopt;
  }
  auto port = parse_port(port_text);
  if (!port) return std::nullopt;
  return SocketAddress{std::string(host), *port};
}

std::string SocketAddress::text() const {
  std::string port_text = std::to_string(port);
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + port_text;
  return host + ":" + port_text;
}

const UpstreamConfig* Config::find_upstream(std::string_view name) const {
  for (const UpstreamConfig& upstream : upstreams) {
    if (upstream.name == name) return &upstream;
  }
  return nullptr;
}

std::string ConfigDiagnostic::text() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  out += message;
  return out;
}

namespace {

std::string join_texts(const std::vector<ConfigDiagnostic>& diagnostics) {
  std::string out;
  for (const ConfigDiagnostic& d : diagnostics) {
    if (!out.empty()) out += '\n';
    out += d.text();
  }
  return out;
}

}  // namespace

ConfigError::ConfigError(std::vector<ConfigDiagnostic> diagnostics)
    : std::runtime_error(join_texts(diagnostics)), diagnostics_(std::move(diagnostics)) {}

// ---- Reading the TOML tree ----

namespace {

std::string single_quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

// Optimal string alignment distance: edits, counting a swap of neighbours ("listne") as one.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t substitution = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + substitution});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// The candidate a typo most likely meant: within one edit per three letters of it.
template <typename Names>
std::optional<std::string_view> nearest_name(std::string_view typo, const Names& candidates) {
  std::optional<std::string_view> best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (std::string_view candidate : candidates) {
    std::size_t distance = edit_distance(typo, candidate);
    if (distance <= std::max<std::size_t>(1, candidate.size() / 3) && distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

template <typename Names>
std::string comma_list(const Names& names) {
  std::string out;
  for (std::string_view name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

std::string_view type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    case toml::node_type::none: break;
  }
  return "nothing";
}

std::string type_mismatch(std::string_view expected, const toml::node& got) {
  return "expected " + std::string(expected) + ", got " + std::string(type_name(got));
}

class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  void add(const toml::source_position& at, std::string key, std::string message) {
    list_.push_back({file_, static_cast<int>(at.line), static_cast<int>(at.column), std::move(key),
                     std::move(message)});
  }
  void add(const toml::node& at, std::string key, std::string message) {
    add(at.source().begin, std::move(key), std::move(message));
  }
  // For problems with no place in the file, such as something missing from all of it.
  void add_unplaced(std::string key, std::string message) {
    add(toml::source_position{0, 0}, std::move(key), std::move(message));
  }

  std::size_t count() const noexcept { return list_.size(); }

  // File order reads best: the operator fixes from the top. Unplaced problems go last.
  void throw_if_any() {
    if (list_.empty()) return;
    std::stable_sort(list_.begin(), list_.end(), [](const ConfigDiagnostic& a, const ConfigDiagnostic& b) {
      auto position = [](const ConfigDiagnostic& d) {
        return std::pair(d.line == 0 ? std::numeric_limits<int>::max() : d.line, d.column);
      };
      return position(a) < position(b);
    });
    throw ConfigError(std::move(list_));
  }

 private:
  std::string file_;
  std::vector<ConfigDiagnostic> list_;
};

// One TOML table: its dotted key path and a prefix naming what it belongs to in messages
// ("route 'items': "), so that every problem in it is reported with both.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string path, Diagnostics& diagnostics)
      : table_(table), path_(std::move(path)), diagnostics_(diagnostics) {}

  const toml::table& contents() const noexcept { return table_; }
  // Prefixes every later message, e.g. "route 'items': ".
  void set_subject(std::string subject) { subject_ = std::move(subject); }

  std::string key(std::string_view name) const {
    return path_.empty() ? std::string(name) : path_ + "." + std::string(name);
  }
  const toml::node* find(std::string_view name) const { return table_.get(name); }

  void error(const toml::node& at, std::string key, std::string_view message) const {
    diagnostics_.add(at, std::move(key), subject_ + std::string(message));
  }

  void reject_unknown_keys(std::initializer_list<std::string_view> known) const {
    for (auto&& [name, node] : table_) {
      std::string_view text = name.str();
      if (std::find(known.begin(), known.end(), text) != known.end()) continue;
      std::string message = "unknown key; ";
      if (auto suggestion = nearest_name(text, known)) {
        message += "did you mean " + single_quoted(*suggestion) + "?";
      } else {
        message += "expected one of: " + comma_list(known);
      }
      diagnostics_.add(name.source().begin, key(text), subject_ + message);
    }
  }

  // The node, or nullptr after reporting that the required key is missing.
  const toml::node* require(std::string_view name) const {
    const toml::node* node = find(name);
    if (!node) diagnostics_.add(table_, key(name), subject_ + "missing required key " + single_quoted(name));
    return node;
  }

  // A sub-table such as [server], or nullopt (reported) if the key holds something else.
  std::optional<TableReader> table(std::string_view name) const {
    const toml::node* node = find(name);
    if (!node) return std::nullopt;
    if (!node->is_table()) {
      error(*node, key(name), type_mismatch("a table", *node));
      return std::nullopt;
    }
    return TableReader(*node->as_table(), key(name), diagnostics_);
  }

  std::optional<std::string> string(std::string_view name) const {
    const toml::node* node = find(name);
    if (!node) return std::nullopt;
    if (!node->is_string()) {
      error(*node, key(name), type_mismatch("a string", *node));
      return std::nullopt;
    }
    return node->as_string()->get();
  }

  void boolean(std::string_view name, bool& out) const {
    const toml::node* node = find(name);
    if (!node) return;
    if (auto value = node->as_boolean()) {
      out = value->get();
    } else {
      error(*node, key(name), type_mismatch("a boolean (true or false)", *node));
    }
  }

  void duration(std::string_view name, Duration& out, Duration minimum) const {
    const toml::node* node = find(name);
    if (!node) return;
    if (auto number = node->as_integer()) {
      error(*node, key(name),
            "expected a duration string; write a unit, e.g. \"" + std::to_string(number->get()) + "s\"");
      return;
    }
    if (!node->is_string()) {
      error(*node, key(name), type_mismatch("a duration string such as \"10s\"", *node));
      return;
    }
    const std::string& text = node->as_string()->get();
    auto duration = parse_duration(text);
    if (!duration) {
      error(*node, key(name),
            text.starts_with('-')
                ? "a duration cannot be negative"
                : "invalid duration \"" + text +
                      "\"; write a number and a unit (ms, s, m or h), e.g. \"250ms\", \"1.5s\", \"2m\"");
      return;
    }
    if (*duration < minimum) {
      error(*node, key(name), "must be at least " + std::to_string(minimum.count()) + "ms");
      return;
    }
    out = *duration;
  }

  template <typename Number>
  void integer(std::string_view name, Number& out, std::int64_t minimum, std::int64_t maximum) const {
    const toml::node* node = find(name);
    if (!node) return;
    auto number = node->as_integer();
    if (!number) {
      error(*node, key(name), type_mismatch("an integer", *node));
      return;
    }
    if (number->get() < minimum || number->get() > maximum) {
      error(*node, key(name),
            out_of_range(std::to_string(minimum), std::to_string(maximum), std::to_string(number->get())));
      return;
    }
    out = static_cast<Number>(number->get());
  }

  template <typename Number>
  void size(std::string_view name, Number& out, std::uint64_t minimum, std::uint64_t maximum) const {
    const toml::node* node = find(name);
    if (!node) return;
    std::optional<std::uint64_t> bytes;
    if (auto number = node->as_integer()) {
      if (number->get() < 0) {
        error(*node, key(name), "a size cannot be negative");
        return;
      }
      bytes = static_cast<std::uint64_t>(number->get());
    } else if (auto text = node->as_string()) {
      bytes = parse_size(text->get());
      if (!bytes) {
        error(*node, key(name),
              "invalid size \"" + text->get() +
                  "\"; write bytes or a number and a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. \"16MiB\"");
        return;
      }
    } else {
      error(*node, key(name), type_mismatch("an integer or a size string such as \"16MiB\"", *node));
      return;
    }
    if (*bytes < minimum || *bytes > maximum) {
      error(*node, key(name),
            out_of_range(std::to_string(minimum), std::to_string(maximum) + " bytes", std::to_string(*bytes)));
      return;
    }
    out = static_cast<Number>(*bytes);
  }

  // Calls fn(element, element_key, text) for each string of an array (or for the value itself
  // when a single string is allowed); reports non-strings, and an empty array with `if_empty`
  // unless that is empty.
  template <typename Fn>
  void strings(std::string_view name, std::string_view what, bool single_allowed, std::string_view if_empty,
               Fn&& fn) const {
    const toml::node* node = find(name);
    if (!node) return;
    if (single_allowed && node->is_string()) {
      fn(*node, key(name), std::string_view(node->as_string()->get()));
      return;
    }
    const toml::array* array = node->as_array();
    if (!array) {
      std::string expected = "an array of " + std::string(what);
      if (single_allowed) expected = "a string or " + expected;
      error(*node, key(name), type_mismatch(expected, *node));
      return;
    }
    if (array->empty() && !if_empty.empty()) {
      error(*node, key(name), if_empty);
      return;
    }
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& element = *array->get(i);
      std::string element_key = key(name) + "[" + std::to_string(i) + "]";
      if (auto text = element.as_string()) {
        fn(element, std::move(element_key), std::string_view(text->get()));
      } else {
        error(element, std::move(element_key), type_mismatch("a string", element));
      }
    }
  }

  enum class PortZero { Allowed, Refused };
  // "listen" and "servers": a list of HOST:PORT; an address listed twice is refused, since
  // a second listen on it would fail at startup and a second server would be a silent weight.
  std::vector<SocketAddress> addresses(std::string_view name, bool single_allowed, PortZero port_zero) const {
    std::vector<SocketAddress> out;
    strings(name, "addresses", single_allowed, "no addresses; give at least one, e.g. \"127.0.0.1:8081\"",
            [&](const toml::node& at, std::string element_key, std::string_view text) {
              auto address = parse_socket_address(text);
              if (!address) {
                error(at, std::move(element_key), invalid_address(text));
              } else if (address->port == 0 && port_zero == PortZero::Refused) {
                error(at, std::move(element_key), "port 0 cannot be connected to; give the port the server listens on");
              } else if (std::find_if(out.begin(), out.end(), [&](const SocketAddress& a) {
                           return a.host == address->host && a.port == address->port;
                         }) != out.end()) {
                error(at, std::move(element_key), address->text() + " is listed twice");
              } else {
                out.push_back(std::move(*address));
              }
            });
    return out;
  }

  std::optional<SocketAddress> address(std::string_view name) const {
    auto text = string(name);
    if (!text) return std::nullopt;
    auto address = parse_socket_address(*text);
    if (!address) error(*find(name), key(name), invalid_address(*text));
    return address;
  }

 private:
  static std::string out_of_range(const std::string& minimum, const std::string& maximum, const std::string& got) {
    return "out of range: must be between " + minimum + " and " + maximum + ", got " + got;
  }
  static std::string invalid_address(std::string_view text) {
    return "invalid address \"" + std::string(text) +
           "\"; write IPV4:PORT, [IPV6]:PORT or localhost:PORT (other host names are not resolved)";
  }

  const toml::table& table_;
  std::string path_;
  std::string subject_;
  Diagnostics& diagnostics_;
};

// RFC 9110 section 5.6.2: tchar.
bool is_token(std::string_view text) {
  if (text.empty()) return false;
  constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
  return std::all_of(text.begin(), text.end(), [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
           kSymbols.find(c) != std::string_view::npos;
  });
}

std::string to_upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

// Timeouts after which nothing could ever succeed must be positive; the others may be 0.
constexpr Duration kNoMinimum{0};
constexpr Duration kPositive{1};
// A head is buffered whole for each connection, so its limit stays modest.
constexpr std::uint64_t kMaxHeaderBytesLimit = 16ull << 20;
constexpr unsigned kMaxWorkers = 1024;
constexpr std::int64_t kMaxConnectionsLimit = 10'000'000;
// More idle connections to one server than there are ephemeral ports could never be opened.
constexpr std::int64_t kMaxKeepalive = 65535;
// [route.etag]: the table is memory (about 91 bytes an entry), and a body up to
// max_body_bytes is buffered per exchange, so both stay within what a process can hold.
constexpr std::int64_t kMaxEtagEntries = 1'000'000'000;
constexpr std::uint64_t kMaxEtagBodyBytes = 1ull << 30;
constexpr std::int64_t kMaxEtagQueue = 1'000'000;
// [[route.limit]] and [route.concurrency]: a bucket is about 43 bytes, an in-flight entry a
// little more, and a queue holds requests (connections), so these are sanity bounds.
constexpr std::uint64_t kMaxRateCount = 1'000'000'000;
constexpr std::uint64_t kMaxBurst = 1'000'000'000;
constexpr std::int64_t kMaxLimitKeys = 1'000'000'000;
constexpr std::int64_t kMaxInFlight = 1'000'000;
constexpr std::int64_t kMaxConcurrencyQueue = 1'000'000;

// "methods": method names, upper-cased, each once; false if any was refused (reported).
bool read_methods(const TableReader& reader, std::vector<std::string>& methods) {
  bool all_valid = true;
  reader.strings("methods", "method names", false, "no methods; leave out 'methods' to take every method",
                 [&](const toml::node& at, std::string key, std::string_view text) {
                   if (text.empty()) {
                     reader.error(at, std::move(key), "empty method name");
                     all_valid = false;
                     return;
                   }
                   if (!is_token(text)) {
                     reader.error(at, std::move(key),
                                  "invalid method name \"" + std::string(text) +
                                      "\"; a method is a token of letters, digits and !#$%&'*+-.^_`|~");
                     all_valid = false;
                     return;
                   }
                   std::string method = to_upper(text);
                   if (std::find(methods.begin(), methods.end(), method) == methods.end()) {
                     methods.push_back(std::move(method));
                   }
                 });
  return all_valid;
}

// "key": "ip", "global" or "header:NAME", into kind and header.
void read_key(const TableReader& reader, KeyKind& kind, std::string& header) {
  auto text = reader.string("key");
  if (!text) return;
  const toml::node& at = *reader.find("key");
  constexpr std::string_view kHeaderPrefix = "header:";
  if (*text == "ip" || *text == "global") {
    kind = *text == "ip" ? KeyKind::ClientAddress : KeyKind::Global;
  } else if (!std::string_view(*text).starts_with(kHeaderPrefix)) {
    reader.error(at, reader.key("key"), "expected \"ip\", \"global\" or \"header:NAME\", got \"" + *text + "\"");
  } else if (std::string name = text->substr(kHeaderPrefix.size()); name.empty()) {
    reader.error(at, reader.key("key"),
                 "no field name after \"header:\"; name the request field, e.g. \"header:X-Api-Key\"");
  } else if (!is_token(name)) {
    reader.error(at, reader.key("key"),
                 "invalid field name \"" + name + "\"; a field name is a token of letters, digits and "
                 "!#$%&'*+-.^_`|~");
  } else {
    kind = KeyKind::Header;
    header = std::move(name);
  }
}

class ConfigReader {
 public:
  explicit ConfigReader(Diagnostics& diagnostics) : diagnostics_(diagnostics) {}

  Config read(const toml::table& root, const std::string& file) {
    Config config;
    config.file = file;
    TableReader top(root, "", diagnostics_);
    top.reject_unknown_keys({"server", "admin", "log", "upstream", "route"});
    read_server(top, config.server);
    if (auto admin = top.table("admin")) {
      admin->reject_unknown_keys({"listen"});
      config.admin.listen = admin->address("listen");
    }
    read_log(top, config.log);
    read_upstreams(top, config.upstreams);
    read_routes(top, config);
    return config;
  }

 private:
  // Where a route's parts are in the file, for the checks that span routes.
  struct RouteSource {
    std::size_t index = 0;  // in the [[route]] array
    const toml::node* name = nullptr;
    const toml::node* path = nullptr;
    const toml::node* upstream = nullptr;
    bool path_and_methods_valid = false;
  };

  void read_server(const TableReader& top, ServerConfig& server) {
    server.listen = {SocketAddress{"127.0.0.1", 8080}};
    auto section = top.table("server");
    if (section) {
      section->reject_unknown_keys({"listen", "workers", "header_timeout", "body_timeout", "idle_timeout", "drain_timeout",
                                    "body_deadline",
                                    "max_header_bytes", "max_body_bytes", "max_connections",
                                    "trusted_proxies", "forward_raw_path", "case_insensitive_paths"});
      if (section->find("listen")) {
        server.listen = section->addresses("listen", true, TableReader::PortZero::Allowed);
      }
      section->integer("workers", server.workers, 0, kMaxWorkers);
      section->duration("header_timeout", server.header_timeout, kPositive);
      section->duration("body_timeout", server.body_timeout, kPositive);
      section->duration("body_deadline", server.body_deadline, kPositive);
      section->duration("idle_timeout", server.idle_timeout, kPositive);
      section->duration("drain_timeout", server.drain_timeout, kNoMinimum);
      section->size("max_header_bytes", server.max_header_bytes, 1, kMaxHeaderBytesLimit);
      section->size("max_body_bytes", server.max_body_bytes, 1, std::numeric_limits<std::uint64_t>::max());
      section->integer("max_connections", server.max_connections, 1, kMaxConnectionsLimit);
      section->boolean("forward_raw_path", server.forward_raw_path);
      section->boolean("case_insensitive_paths", server.case_insensitive_paths);
      section->strings("trusted_proxies", "CIDRs", false, "",
                       [&](const toml::node& at, std::string key, std::string_view text) {
                         if (auto cidr = parse_cidr(text)) {
                           server.trusted_proxies.push_back(std::move(*cidr));
                         } else {
                           section->error(at, std::move(key),
                                          "invalid CIDR \"" + std::string(text) +
                                              "\"; write an address or ADDRESS/PREFIX with no bits set "
                                              "after the prefix, e.g. \"10.0.0.0/8\", \"::1/128\"");
                         }
                       });
    }
    if (server.workers == 0) server.workers = std::max(1u, std::thread::hardware_concurrency());
  }

  void read_log(const TableReader& top, LogConfig& log) {
    auto section = top.table("log");
    if (!section) return;
    section->reject_unknown_keys({"access", "format"});
    if (auto access = section->string("access")) {
      if (*access == "stdout" || *access == "off") {
        log.access = *access == "stdout";
      } else if (access->find('/') != std::string::npos && access->back() != '/') {
        log.access_path = *access;  // a file; a path without '/' is taken for a misspelt keyword
      } else {
        section->error(*section->find("access"), section->key("access"),
                       "expected \"stdout\", \"off\" or a file path with a '/' (\"/var/log/arbiter/access.log\", "
                       "\"./access.log\"), got \"" + *access + "\"");
      }
    }
    if (auto format = section->string("format")) {
      if (*format == "json" || *format == "combined") {
        log.format = *format == "json" ? AccessLogFormat::Json : AccessLogFormat::Combined;
      } else {
        section->error(*section->find("format"), section->key("format"),
                       "expected \"json\" or \"combined\", got \"" + *format + "\"");
      }
    }
  }

  void read_upstreams(const TableReader& top, std::vector<UpstreamConfig>& upstreams) {
    if (!top.find("upstream")) {
      diagnostics_.add_unplaced("upstream",
                                "no upstream defined; add one, e.g. [upstream.backend] with "
                                "servers = [\"127.0.0.1:8081\"]");
      return;
    }
    auto section = top.table("upstream");
    if (!section) return;
    if (section->contents().empty()) {
      top.error(*top.find("upstream"), "upstream", "no upstream defined; add one, e.g. [upstream.backend]");
      return;
    }
    // toml++ keeps keys sorted by name; the Config promises file order.
    std::vector<std::pair<std::string_view, const toml::node*>> in_file_order;
    for (auto&& [name, node] : section->contents()) in_file_order.emplace_back(name.str(), &node);
    std::stable_sort(in_file_order.begin(), in_file_order.end(), [](const auto& a, const auto& b) {
      const toml::source_position& pa = a.second->source().begin;
      const toml::source_position& pb = b.second->source().begin;
      return std::pair(pa.line, pa.column) < std::pair(pb.line, pb.column);
    });
    for (const auto& [name, node] : in_file_order) {
      if (!node->is_table()) {
        section->error(*node, section->key(name),
                       type_mismatch("a table", *node) + "; write each upstream as [upstream.NAME]");
        continue;
      }
      TableReader upstream(*node->as_table(), section->key(name), diagnostics_);
      upstream.reject_unknown_keys({"servers", "connect_timeout", "response_timeout", "fail_timeout", "keepalive"});
      UpstreamConfig& config = upstreams.emplace_back();
      config.name = std::string(name);
      config.line = static_cast<int>(node->source().begin.line);
      if (upstream.require("servers")) {
        config.servers = upstream.addresses("servers", false, TableReader::PortZero::Refused);
      }
      upstream.duration("connect_timeout", config.connect_timeout, kPositive);
      upstream.duration("response_timeout", config.response_timeout, kPositive);
      upstream.duration("fail_timeout", config.fail_timeout, kNoMinimum);
      upstream.integer("keepalive", config.keepalive, 0, kMaxKeepalive);
    }
  }

  void read_routes(const TableReader& top, Config& config) {
    const toml::node* node = top.find("route");
    if (!node) {
      diagnostics_.add_unplaced("route", "no route defined; add at least one [[route]] with name, path and upstream");
      return;
    }
    const toml::array* array = node->as_array();
    if (!array) {
      top.error(*node, "route",
                node->is_table() ? "write [[route]] (an array of tables), not [route]"
                                 : type_mismatch("an array of [[route]] tables", *node));
      return;
    }
    if (array->empty()) {
      top.error(*node, "route", "no route defined; add at least one [[route]]");
      return;
    }
    std::vector<RouteSource> sources;
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& element = *array->get(i);
      if (!element.is_table()) {
        top.error(element, route_key(i), type_mismatch("a table", element));
        continue;
      }
      RouteConfig& route = config.routes.emplace_back();
      route.line = static_cast<int>(element.source().begin.line);
      route.column = static_cast<int>(element.source().begin.column);
      TableReader reader(*element.as_table(), route_key(i), diagnostics_);
      sources.push_back(read_route(reader, route));
      sources.back().index = i;
    }
    check_route_names(config.routes, sources);
    check_route_upstreams(config, sources);
    lease_write_turns(config);
    check_reachability(config.routes, sources, config.server.case_insensitive_paths);
  }

  RouteSource read_route(TableReader& reader, RouteConfig& route) {
    RouteSource source;
    // The name first, so that every other message can say which route it is about.
    if ((source.name = reader.require("name"))) {
      if (auto name = reader.string("name")) {
        if (name->empty()) {
          reader.error(*source.name, reader.key("name"), "a route name cannot be empty");
        } else {
          route.name = *name;
          reader.set_subject(subject(route));
        }
      }
    }
    reader.reject_unknown_keys(
        {"name", "path", "methods", "upstream", "etag", "limit", "concurrency", "rate_limit_headers", "websocket",
         "tunnel_idle_timeout"});
    std::size_t errors_before = diagnostics_.count();
    bool path_valid = false;
    if ((source.path = reader.require("path"))) {
      if (auto path = reader.string("path")) {
        route.path = *path;
        try {
          PathPattern pattern(route.path);
          path_valid = true;
        } catch (const std::invalid_argument& e) {
          reader.error(*source.path, reader.key("path"), e.what());
        }
      }
    }
    bool methods_valid = read_methods(reader, route.methods);
    source.path_and_methods_valid = source.path && diagnostics_.count() == errors_before;
    if ((source.upstream = reader.require("upstream"))) {
      if (auto upstream = reader.string("upstream")) route.upstream = *upstream;
    }
    if (auto etag = reader.table("etag")) {
      etag->set_subject(subject(route));
      route.etag = read_etag(*etag, path_valid ? std::optional<std::string_view>(route.path) : std::nullopt);
    }
    bool send_headers = true;
    reader.boolean("rate_limit_headers", send_headers);
    if (reader.find("limit")) {
      route.rate_limit = read_limits(reader, route, methods_valid);
      if (route.rate_limit) route.rate_limit->send_headers = send_headers;
    }
    if (auto concurrency = reader.table("concurrency")) {
      concurrency->set_subject(subject(route));
      route.concurrency = read_concurrency(*concurrency);
    }
    reader.boolean("websocket", route.websocket);
    reader.duration("tunnel_idle_timeout", route.tunnel_idle_timeout, kPositive);
    return source;
  }

  // [[route.limit]]: nullopt when it is not an array of tables (reported).
  std::optional<RateLimitPolicyConfig> read_limits(const TableReader& route_reader, const RouteConfig& route,
                                                   bool route_methods_valid) {
    const toml::node& node = *route_reader.find("limit");
    std::string key = route_reader.key("limit");
    const toml::array* array = node.as_array();
    if (!array) {
      route_reader.error(node, key,
                         node.is_table() ? "write [[route.limit]] (an array of tables), not [route.limit]"
                                         : type_mismatch("an array of [[route.limit]] tables", node));
      return std::nullopt;
    }
    if (array->empty()) {
      route_reader.error(node, key, "no limits; leave out 'limit' or add [[route.limit]] tables");
      return std::nullopt;
    }
    RateLimitPolicyConfig config;
    std::vector<const toml::node*> positions;  // where each limit's name (or table) is, for duplicates
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& element = *array->get(i);
      std::string element_key = key + "[" + std::to_string(i) + "]";
      if (!element.is_table()) {
        route_reader.error(element, element_key, type_mismatch("a table", element));
        continue;
      }
      TableReader reader(*element.as_table(), element_key, diagnostics_);
      reader.set_subject(subject(route));
      RateLimitConfig& limit = config.limits.emplace_back();
      read_limit(reader, route, route_methods_valid, limit);
      if (limit.name.empty()) limit.name = default_limit_name(route.name, i);
      const toml::node* name = reader.find("name");
      positions.push_back(name ? name : &element);
      for (std::size_t j = 0; j + 1 < config.limits.size(); ++j) {
        if (config.limits[j].name != limit.name) continue;
        reader.error(*positions.back(), name ? reader.key("name") : element_key,
                     "duplicate limit name " + single_quoted(limit.name) + "; the limit at line " +
                         std::to_string(positions[j]->source().begin.line) + " already has it");
        break;
      }
    }
    return config;
  }

  static void read_limit(const TableReader& reader, const RouteConfig& route, bool route_methods_valid,
                         RateLimitConfig& limit) {
    reader.reject_unknown_keys({"name", "rate", "burst", "key", "methods", "max_keys"});
    if (auto name = reader.string("name")) {
      const toml::node& at = *reader.find("name");
      if (name->empty()) {
        reader.error(at, reader.key("name"), "a limit name cannot be empty; leave out 'name' for the default");
      } else if (!is_valid_limit_name(*name)) {
        reader.error(at, reader.key("name"),
                     "a limit name must be printable ASCII: clients receive it in the RateLimit fields");
      } else {
        limit.name = *name;
      }
    }
    bool rate_valid = false;
    if (const toml::node* node = reader.require("rate")) {
      std::string key = reader.key("rate");
      auto text = node->as_string();
      auto rate = text ? parse_rate(text->get()) : std::nullopt;
      if (node->is_integer()) {
        reader.error(*node, key, "expected a rate string; write the period too, e.g. \"" +
                                     std::to_string(node->as_integer()->get()) + "/s\"");
      } else if (!text) {
        reader.error(*node, key, type_mismatch("a rate string such as \"20/s\"", *node));
      } else if (!rate) {
        reader.error(*node, key, "rate must look like \"20/s\", \"100/m\" or \"1000/h\", got \"" + text->get() + "\"");
      } else if (rate->count == 0) {
        reader.error(*node, key, "a rate must allow at least 1 request, got \"" + text->get() + "\"");
      } else if (rate->count > kMaxRateCount) {
        reader.error(*node, key,
                     "at most " + std::to_string(kMaxRateCount) + " requests a period, got \"" + text->get() + "\"");
      } else {
        limit.count = rate->count;
        limit.per = rate->per;
        rate_valid = true;
      }
    }
    std::uint64_t max_burst = kMaxBurst;
    if (rate_valid) {
      max_burst = std::min(max_burst, BucketShape::max_burst(limit.count, limit.per));
      limit.burst = default_burst(limit.count, limit.per);
    }
    reader.integer("burst", limit.burst, 1, static_cast<std::int64_t>(max_burst));
    read_key(reader, limit.key_kind, limit.header);
    read_methods(reader, limit.methods);
    if (route_methods_valid && !route.methods.empty()) {
      for (const std::string& method : limit.methods) {
        if (std::find(route.methods.begin(), route.methods.end(), method) != route.methods.end()) continue;
        reader.error(*reader.find("methods"), reader.key("methods"),
                     "the route takes no " + method + " requests (only " + comma_list(route.methods) +
                         "), so this limit would never apply to them");
      }
    }
    reader.integer("max_keys", limit.max_keys, 1, kMaxLimitKeys);
  }

  static ConcurrencyConfig read_concurrency(const TableReader& reader) {
    reader.reject_unknown_keys({"max_in_flight", "max_queue", "queue_timeout", "key", "max_keys"});
    ConcurrencyConfig concurrency;
    if (reader.require("max_in_flight")) reader.integer("max_in_flight", concurrency.max_in_flight, 1, kMaxInFlight);
    reader.integer("max_queue", concurrency.max_queue, 0, kMaxConcurrencyQueue);
    reader.duration("queue_timeout", concurrency.queue_timeout, kPositive);
    read_key(reader, concurrency.key, concurrency.header);
    reader.integer("max_keys", concurrency.max_keys, 1, kMaxLimitKeys);
    return concurrency;
  }

  // [route.etag]; route_path is the route's valid path pattern (nullopt if it is not valid, in
  // which case the resource template is not checked against it).
  static EtagPolicyConfig read_etag(const TableReader& reader, std::optional<std::string_view> route_path) {
    reader.reject_unknown_keys({"conflict_status", "require_if_match", "verify", "source", "resource", "max_entries",
                                "max_body_bytes", "max_queue", "queue_timeout"});
    EtagPolicyConfig etag;
    if (const toml::node* status = reader.find("conflict_status")) {
      auto number = status->as_integer();
      if (number && number->get() != 409 && number->get() != 412) {
        reader.error(*status, reader.key("conflict_status"),
                     "must be 409 (Conflict) or 412 (Precondition Failed), got " + std::to_string(number->get()));
      } else {
        reader.integer("conflict_status", etag.conflict_status, 409, 412);
      }
    }
    reader.boolean("require_if_match", etag.require_if_match);
    if (auto verify = reader.string("verify")) {
      if (*verify == "upstream" || *verify == "cache") {
        etag.verify = *verify == "cache" ? EtagPolicyConfig::Verify::Cache : EtagPolicyConfig::Verify::Upstream;
      } else {
        reader.error(*reader.find("verify"), reader.key("verify"),
                     "expected \"upstream\" or \"cache\", got \"" + *verify + "\"");
      }
    }
    if (auto source = reader.string("source")) read_etag_source(reader, *source, etag);
    if (auto resource = reader.string("resource")) read_etag_resource(reader, *resource, route_path, etag);
    reader.integer("max_entries", etag.max_entries, 1, kMaxEtagEntries);
    reader.size("max_body_bytes", etag.max_body_bytes, 1, kMaxEtagBodyBytes);
    reader.integer("max_queue", etag.max_queue, 0, kMaxEtagQueue);
    reader.duration("queue_timeout", etag.queue_timeout, kPositive);
    return etag;
  }

  static void read_etag_source(const TableReader& reader, const std::string& source, EtagPolicyConfig& etag) {
    const toml::node& at = *reader.find("source");
    std::string key = reader.key("source");
    constexpr std::string_view kJsonPrefix = "json:";
    if (source == "auto" || source == "hash") {
      etag.source = source == "auto" ? EtagPolicyConfig::Source::Auto : EtagPolicyConfig::Source::Hash;
    } else if (!std::string_view(source).starts_with(kJsonPrefix)) {
      reader.error(at, key, "expected \"auto\", \"hash\" or \"json:/POINTER\", got \"" + source + "\"");
    } else if (std::string pointer = source.substr(kJsonPrefix.size()); pointer.empty()) {
      reader.error(at, key, "no JSON pointer after \"json:\"; name the version field, e.g. \"json:/version\"");
    } else if (!is_valid_json_pointer(pointer)) {
      reader.error(at, key,
                   "invalid JSON pointer \"" + pointer +
                       "\"; write '/' before each key, ~0 for '~' and ~1 for '/', e.g. \"json:/meta/version\"");
    } else {
      etag.source = EtagPolicyConfig::Source::JsonPointer;
      etag.json_pointer = std::move(pointer);
    }
  }

  static void read_etag_resource(const TableReader& reader, const std::string& resource,
                                 std::optional<std::string_view> route_path, EtagPolicyConfig& etag) {
    const toml::node& at = *reader.find("resource");
    std::string key = reader.key("resource");
    auto names = template_param_names(resource);
    if (resource.empty()) {
      reader.error(at, key, "an empty resource key; leave out 'resource' to key each resource by its request path");
      return;
    }
    if (!names) {
      reader.error(at, key, "malformed template \"" + resource + "\": every '{' needs a '}' and a name between them");
      return;
    }
    auto captured = route_path ? template_param_names(*route_path) : std::nullopt;
    if (!captured) {  // an invalid path was reported already; nothing to check against
      etag.resource = resource;
      return;
    }
    bool all_known = true;
    for (std::string_view name : *names) {
      if (std::find(captured->begin(), captured->end(), name) != captured->end()) continue;
      all_known = false;
      std::string message = "unknown parameter {" + std::string(name) + "}: the route's path " +
                            single_quoted(*route_path) + " captures ";
      if (captured->empty()) {
        message += "none";
      } else {
        for (std::size_t i = 0; i < captured->size(); ++i) {
          message += (i == 0 ? "{" : ", {") + std::string((*captured)[i]) + "}";
        }
      }
      reader.error(at, key, message);
    }
    if (all_known) etag.resource = resource;
  }

  void check_route_names(const std::vector<RouteConfig>& routes, const std::vector<RouteSource>& sources) {
    std::unordered_map<std::string_view, std::size_t> first_with;  // name -> first route with it
    for (std::size_t i = 0; i < routes.size(); ++i) {
      if (routes[i].name.empty()) continue;
      auto [first, inserted] = first_with.try_emplace(routes[i].name, i);
      if (inserted) continue;
      std::size_t j = first->second;
      diagnostics_.add(*sources[i].name, route_key(sources[i].index, "name"),
                       "duplicate route name " + single_quoted(routes[i].name) + "; " + route_key(sources[j].index) +
                           " at line " + std::to_string(routes[j].line) + " already has it");
    }
  }

  // An ETag route's write turns are leased for its upstream's timeouts (write_turn_lease()).
  static void lease_write_turns(Config& config) {
    for (RouteConfig& route : config.routes) {
      const UpstreamConfig* upstream = config.find_upstream(route.upstream);
      if (!route.etag || upstream == nullptr) continue;
      route.etag->turn_lease =
          write_turn_lease(std::chrono::duration_cast<std::chrono::milliseconds>(upstream->connect_timeout),
                           std::chrono::duration_cast<std::chrono::milliseconds>(upstream->response_timeout));
    }
  }

  void check_route_upstreams(const Config& config, const std::vector<RouteSource>& sources) {
    if (config.upstreams.empty()) return;  // reported once already, as the missing upstream
    std::vector<std::string_view> defined;
    for (const UpstreamConfig& upstream : config.upstreams) defined.push_back(upstream.name);
    for (std::size_t i = 0; i < config.routes.size(); ++i) {
      const RouteConfig& route = config.routes[i];
      if (!sources[i].upstream || !sources[i].upstream->is_string() || config.find_upstream(route.upstream)) {
        continue;
      }
      std::string message = subject(route) + "unknown upstream " + single_quoted(route.upstream);
      if (auto suggestion = nearest_name(route.upstream, defined)) {
        message += "; did you mean " + single_quoted(*suggestion) + "?";
      }
      message += " (defined: " + comma_list(defined) + ")";
      diagnostics_.add(*sources[i].upstream, route_key(sources[i].index, "upstream"), std::move(message));
    }
  }

  // A route that an earlier one always takes first is a mistake in the order of routes.
  // Only routes with a valid path and methods take part: a route broadened by a dropped bad
  // value must not make a false claim about the routes after it.
  void check_reachability(const std::vector<RouteConfig>& routes, const std::vector<RouteSource>& sources,
                          bool case_insensitive_paths) {
    std::vector<RouteConfig> checked;
    std::vector<std::size_t> checked_source;  // into routes and sources
    for (std::size_t i = 0; i < routes.size(); ++i) {
      if (!sources[i].path_and_methods_valid) continue;
      checked.push_back(routes[i]);
      checked_source.push_back(i);
    }
    Router router(checked, case_insensitive_paths);
    std::vector<std::optional<std::size_t>> shadowing = router.shadowing();
    for (std::size_t k = 0; k < checked.size(); ++k) {
      const std::optional<std::size_t>& earlier = shadowing[k];
      if (!earlier) continue;
      const RouteConfig& shadowing = checked[*earlier];
      std::string shadowing_label = shadowing.name.empty() ? route_key(sources[checked_source[*earlier]].index)
                                                           : "route " + single_quoted(shadowing.name);
      const RouteSource& source = sources[checked_source[k]];
      diagnostics_.add(*source.path, route_key(source.index, "path"),
                       subject(checked[k]) + "unreachable: " + shadowing_label + " (line " +
                           std::to_string(shadowing.line) + ") already matches every request this route takes");
    }
  }

  static std::string route_key(std::size_t index) { return "route[" + std::to_string(index) + "]"; }
  static std::string route_key(std::size_t index, std::string_view name) {
    return route_key(index) + "." + std::string(name);
  }
  static std::string subject(const RouteConfig& route) {
    return route.name.empty() ? std::string() : "route " + single_quoted(route.name) + ": ";
  }

  Diagnostics& diagnostics_;
};

}  // namespace

Config parse_config(std::string_view toml_text, const std::string& file_name) {
  Diagnostics diagnostics(file_name);
  toml::table root;
  try {
    root = toml::parse(toml_text, std::string_view(file_name));
  } catch (const toml::parse_error& e) {
    diagnostics.add(e.source().begin, "", "syntax error: " + std::string(e.description()));
    diagnostics.throw_if_any();
  }
  Config config = ConfigReader(diagnostics).read(root, file_name);
  diagnostics.throw_if_any();
  return config;
}

Config load_config_file(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  std::string text;
  int error = file ? 0 : errno;
  if (file) {
    char buffer[8192];
    std::size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) text.append(buffer, n);
    if (std::ferror(file.get())) error = errno;  // e.g. EISDIR: fopen accepts a directory
  }
  if (error != 0) {
    throw ConfigError({ConfigDiagnostic{path, 0, 0, "", "cannot read the file: " + std::string(std::strerror(error))}});
  }
  return parse_config(text, path);
}

// ---- The route table ----

namespace {

std::string methods_column(const RouteConfig& route) {
  if (route.methods.empty()) return "*";
  return comma_list(route.methods);
}

std::string upstream_column(const Config& config, const RouteConfig& route) {
  const UpstreamConfig* upstream = config.find_upstream(route.upstream);
  if (!upstream) return route.upstream;
  std::string servers;
  for (const SocketAddress& server : upstream->servers) {
    if (!servers.empty()) servers += ", ";
    servers += server.text();
  }
  return route.upstream + " (" + servers + ")";
}

// Each policy's kind() with what most changes its behaviour, e.g. "etag(verify=upstream)".
std::string policies_column(const RouteConfig& route) {
  std::vector<std::string> policies;
  if (route.rate_limit) {
    std::string limits;
    for (const RateLimitConfig& limit : route.rate_limit->limits) {
      if (!limits.empty()) limits += "; ";
      limits += limit.name + " " + rate_text(limit.count, limit.per) + " burst " + std::to_string(limit.burst);
    }
    policies.push_back("rate_limit(" + limits + ")");
  }
  if (const auto& concurrency = route.concurrency) {
    std::string per_key;
    if (concurrency->key != KeyKind::Global) per_key = " per " + key_name(concurrency->key, concurrency->header);
    policies.push_back("concurrency(" + std::to_string(concurrency->max_in_flight) + per_key + ", queue " +
                       std::to_string(concurrency->max_queue) + ")");
  }
  if (route.etag) policies.push_back("etag(verify=" + std::string(verify_name(route.etag->verify)) + ")");
  if (policies.empty()) return "-";
  return comma_list(policies);
}

}  // namespace

std::string format_route_table(const Config& config) {
  using Row = std::vector<std::string>;
  std::vector<Row> rows = {{"ROUTE", "PATH", "METHODS", "UPSTREAM", "POLICIES"}};
  for (const RouteConfig& route : config.routes) {
    rows.push_back({route.name, route.path, methods_column(route), upstream_column(config, route),
                    policies_column(route)});
  }
  std::vector<std::size_t> widths(rows[0].size(), 0);
  for (const Row& row : rows) {
    for (std::size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out;
  for (const Row& row : rows) {
    for (std::size_t c = 0; c < row.size(); ++c) {
      out += row[c];
      if (c + 1 < row.size()) out += std::string(widths[c] - row[c].size() + 2, ' ');
    }
    out += '\n';
  }
  return out;
}

}  // namespace arbiter
