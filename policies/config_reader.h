#pragma once
// Reading the TOML configuration with positioned diagnostics: the API that proxy/config/ and
// every policy kind's reader (policies/<kind>/<kind>_config.cpp) share, so that a policy's
// keys get the same error quality as the proxy's own: file, line, column, dotted key, the
// route it belongs to, and a suggestion for a misspelt key.
//
// It lives in policies/ (linking toml++, no libuv) because policies/ may not depend on
// proxy/config/, while proxy/config/ builds on policies/ anyway.
//
// Everything here is used by the one thread that loads a configuration.

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "policies/request_key.h"
#include "proxy/http/headers.h"  // is_token

namespace arbiter {

using Duration = std::chrono::milliseconds;

// ---- Diagnostics ----

struct ConfigDiagnostic {
  std::string file;
  int line = 0;     // 1-based; 0 when the problem has no position (e.g. file not found)
  int column = 0;
  std::string key;  // dotted path, e.g. "route[2].path", "upstream.legacy.connect_timeout"
  std::string message;
  // "FILE:LINE:COL: key: message"
  std::string text() const;
};

class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<ConfigDiagnostic> diagnostics);
  const std::vector<ConfigDiagnostic>& diagnostics() const noexcept { return diagnostics_; }

 private:
  std::vector<ConfigDiagnostic> diagnostics_;
};

// Every problem of one file, collected so that all of them are reported at once.
class ConfigDiagnostics {
 public:
  explicit ConfigDiagnostics(std::string file) : file_(std::move(file)) {}

  void add(const toml::source_position& at, std::string key, std::string message);
  void add(const toml::node& at, std::string key, std::string message);
  // For problems with no place in the file, such as something missing from all of it.
  void add_unplaced(std::string key, std::string message);

  std::size_t count() const noexcept { return list_.size(); }

  // Throws ConfigError with every problem in file order (unplaced ones last), if there is any.
  void throw_if_any();

 private:
  std::string file_;
  std::vector<ConfigDiagnostic> list_;
};

// ---- Values with units ----

// "250ms", "2s", "1m", "1h" (also "1.5s"); nullopt if malformed or negative.
std::optional<Duration> parse_duration(std::string_view text);
// "16MiB", "512KiB", "1GiB", "100KB", "100" (bytes); nullopt if malformed or overflowing.
std::optional<std::uint64_t> parse_size(std::string_view text);

struct Rate {
  std::uint64_t count = 0;
  std::chrono::seconds per{1};
  bool operator==(const Rate&) const = default;
};
// "20/s", "100/m", "1000/h" (count 0 included, for the caller to refuse with its own words);
// nullopt if malformed or the count overflows.
std::optional<Rate> parse_rate(std::string_view text);

// "10s" when a whole number of seconds, else "250ms": what parse_duration reads back.
std::string duration_text(Duration duration);

// ---- Words for messages ----

std::string single_quoted(std::string_view text);
// "a, b, c"
std::string comma_list(const std::vector<std::string_view>& names);
std::string comma_list(const std::vector<std::string>& names);
// The candidate a typo most likely meant: within one edit per three letters of it.
std::optional<std::string_view> nearest_name(std::string_view typo, const std::vector<std::string_view>& candidates);
// "expected a table, got an integer"
std::string type_mismatch(std::string_view expected, const toml::node& got);

// Timeouts after which nothing could ever succeed must be positive; the others may be 0.
inline constexpr Duration kNoMinimum{0};
inline constexpr Duration kPositive{1};

// ---- Tables ----

// One TOML table: its dotted key path and a prefix naming what it belongs to in messages
// ("route 'items': "), so that every problem in it is reported with both. Refers to the table
// and the diagnostics; both must outlive it.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string path, ConfigDiagnostics& diagnostics)
      : table_(table), path_(std::move(path)), diagnostics_(diagnostics) {}

  const toml::table& contents() const noexcept { return table_; }
  // Prefixes every later message, e.g. "route 'items': ".
  void set_subject(std::string subject) { subject_ = std::move(subject); }

  std::string key(std::string_view name) const;
  const toml::node* find(std::string_view name) const { return table_.get(name); }

  // A reader of another table (an element of an array here, say) reporting to the same
  // diagnostics, with the same subject.
  TableReader child(const toml::table& table, std::string path) const;

  void error(const toml::node& at, std::string key, std::string_view message) const;

  // Reports each key not among `known`, with the nearest known one or the list of them.
  void reject_unknown_keys(const std::vector<std::string_view>& known) const;
  void reject_unknown_keys(std::initializer_list<std::string_view> known) const {
    reject_unknown_keys(std::vector<std::string_view>(known));
  }

  // The node, or nullptr after reporting that the required key is missing.
  const toml::node* require(std::string_view name) const;

  // A sub-table such as [server] (with this table's subject), or nullopt (reported) if the key
  // holds something else.
  std::optional<TableReader> table(std::string_view name) const;

  std::optional<std::string> string(std::string_view name) const;
  // A string that must be one of `names`: its index, or nullopt when absent or another value
  // (reported, listing the names).
  std::optional<std::size_t> choice(std::string_view name, std::initializer_list<std::string_view> names) const;
  template <typename Enum>
  void choice(std::string_view name, Enum& out, std::initializer_list<std::string_view> names) const {
    if (auto index = choice(name, names)) out = static_cast<Enum>(*index);
  }
  void boolean(std::string_view name, bool& out) const;
  void duration(std::string_view name, Duration& out, Duration minimum) const;

  template <typename Number>
  void integer(std::string_view name, Number& out, std::int64_t minimum, std::int64_t maximum) const {
    if (auto value = integer_value(name, minimum, maximum)) out = static_cast<Number>(*value);
  }

  template <typename Number>
  void size(std::string_view name, Number& out, std::uint64_t minimum, std::uint64_t maximum) const {
    if (auto value = size_value(name, minimum, maximum)) out = static_cast<Number>(*value);
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

 private:
  std::optional<std::int64_t> integer_value(std::string_view name, std::int64_t minimum, std::int64_t maximum) const;
  std::optional<std::uint64_t> size_value(std::string_view name, std::uint64_t minimum, std::uint64_t maximum) const;

  const toml::table& table_;
  std::string path_;
  std::string subject_;
  ConfigDiagnostics& diagnostics_;
};

// ---- Keys more than one table has ----

// "methods": method names, upper-cased, each once; false if any was refused (reported).
bool read_methods(const TableReader& reader, std::vector<std::string>& methods);
// `name` ("key" unless another is given): "ip", "global" or "header:NAME", into kind and header.
void read_key(const TableReader& reader, KeyKind& kind, std::string& header, std::string_view name = "key");
// "max_keys" of a keyed limit: a bucket is about 43 bytes, an in-flight entry a little more,
// so this is a sanity bound.
inline constexpr std::int64_t kMaxLimitKeys = 1'000'000'000;

}  // namespace arbiter
