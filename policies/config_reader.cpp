#include "policies/config_reader.h"

#include <algorithm>
#include <span>
#include <utility>

namespace arbiter {

// ---- Diagnostics ----

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

void ConfigDiagnostics::add(const toml::source_position& at, std::string key, std::string message) {
  list_.push_back({file_, static_cast<int>(at.line), static_cast<int>(at.column), std::move(key), std::move(message)});
}

void ConfigDiagnostics::add(const toml::node& at, std::string key, std::string message) {
  add(at.source().begin, std::move(key), std::move(message));
}

void ConfigDiagnostics::add_unplaced(std::string key, std::string message) {
  add(toml::source_position{0, 0}, std::move(key), std::move(message));
}

// File order reads best: the operator fixes from the top.
void ConfigDiagnostics::throw_if_any() {
  if (list_.empty()) return;
  std::stable_sort(list_.begin(), list_.end(), [](const ConfigDiagnostic& a, const ConfigDiagnostic& b) {
    auto position = [](const ConfigDiagnostic& d) {
      return std::pair(d.line == 0 ? std::numeric_limits<int>::max() : d.line, d.column);
    };
    return position(a) < position(b);
  });
  throw ConfigError(std::move(list_));
}

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

std::string duration_text(Duration duration) {
  auto milliseconds = duration.count();
  if (milliseconds % 1000 == 0) return std::to_string(milliseconds / 1000) + "s";
  return std::to_string(milliseconds) + "ms";
}

// ---- Words for messages ----

std::string single_quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

namespace {

template <typename Names>
std::string joined_with_commas(const Names& names) {
  std::string out;
  for (std::string_view name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

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

}  // namespace

std::string comma_list(const std::vector<std::string_view>& names) { return joined_with_commas(names); }
std::string comma_list(const std::vector<std::string>& names) { return joined_with_commas(names); }

std::optional<std::string_view> nearest_name(std::string_view typo, const std::vector<std::string_view>& candidates) {
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

std::string type_mismatch(std::string_view expected, const toml::node& got) {
  return "expected " + std::string(expected) + ", got " + std::string(type_name(got));
}

// ---- Tables ----

namespace {

std::string out_of_range(const std::string& minimum, const std::string& maximum, const std::string& got) {
  return "out of range: must be between " + minimum + " and " + maximum + ", got " + got;
}

}  // namespace

std::string TableReader::key(std::string_view name) const {
  return path_.empty() ? std::string(name) : path_ + "." + std::string(name);
}

TableReader TableReader::child(const toml::table& table, std::string path) const {
  TableReader reader(table, std::move(path), diagnostics_);
  reader.subject_ = subject_;
  return reader;
}

void TableReader::error(const toml::node& at, std::string key, std::string_view message) const {
  diagnostics_.add(at, std::move(key), subject_ + std::string(message));
}

void TableReader::reject_unknown_keys(const std::vector<std::string_view>& known) const {
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

const toml::node* TableReader::require(std::string_view name) const {
  const toml::node* node = find(name);
  if (!node) diagnostics_.add(table_, key(name), subject_ + "missing required key " + single_quoted(name));
  return node;
}

std::optional<TableReader> TableReader::table(std::string_view name) const {
  const toml::node* node = find(name);
  if (!node) return std::nullopt;
  if (!node->is_table()) {
    error(*node, key(name), type_mismatch("a table", *node));
    return std::nullopt;
  }
  return child(*node->as_table(), key(name));
}

std::optional<std::string> TableReader::string(std::string_view name) const {
  const toml::node* node = find(name);
  if (!node) return std::nullopt;
  if (!node->is_string()) {
    error(*node, key(name), type_mismatch("a string", *node));
    return std::nullopt;
  }
  return node->as_string()->get();
}

std::optional<std::size_t> TableReader::choice(std::string_view name,
                                               std::initializer_list<std::string_view> names) const {
  auto value = string(name);
  if (!value) return std::nullopt;
  std::string expected;
  std::size_t index = 0;
  for (std::string_view candidate : names) {
    if (candidate == *value) return index;
    expected += (index == 0 ? "\"" : index + 1 == names.size() ? " or \"" : ", \"") + std::string(candidate) + "\"";
    ++index;
  }
  error(*find(name), key(name), "expected " + expected + ", got \"" + *value + "\"");
  return std::nullopt;
}

void TableReader::boolean(std::string_view name, bool& out) const {
  const toml::node* node = find(name);
  if (!node) return;
  if (auto value = node->as_boolean()) {
    out = value->get();
  } else {
    error(*node, key(name), type_mismatch("a boolean (true or false)", *node));
  }
}

void TableReader::duration(std::string_view name, Duration& out, Duration minimum) const {
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

std::optional<std::int64_t> TableReader::integer_value(std::string_view name, std::int64_t minimum,
                                                       std::int64_t maximum) const {
  const toml::node* node = find(name);
  if (!node) return std::nullopt;
  auto number = node->as_integer();
  if (!number) {
    error(*node, key(name), type_mismatch("an integer", *node));
    return std::nullopt;
  }
  if (number->get() < minimum || number->get() > maximum) {
    error(*node, key(name),
          out_of_range(std::to_string(minimum), std::to_string(maximum), std::to_string(number->get())));
    return std::nullopt;
  }
  return number->get();
}

std::optional<std::uint64_t> TableReader::size_value(std::string_view name, std::uint64_t minimum,
                                                     std::uint64_t maximum) const {
  const toml::node* node = find(name);
  if (!node) return std::nullopt;
  std::optional<std::uint64_t> bytes;
  if (auto number = node->as_integer()) {
    if (number->get() < 0) {
      error(*node, key(name), "a size cannot be negative");
      return std::nullopt;
    }
    bytes = static_cast<std::uint64_t>(number->get());
  } else if (auto text = node->as_string()) {
    bytes = parse_size(text->get());
    if (!bytes) {
      error(*node, key(name),
            "invalid size \"" + text->get() +
                "\"; write bytes or a number and a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. \"16MiB\"");
      return std::nullopt;
    }
  } else {
    error(*node, key(name), type_mismatch("an integer or a size string such as \"16MiB\"", *node));
    return std::nullopt;
  }
  if (*bytes < minimum || *bytes > maximum) {
    error(*node, key(name),
          out_of_range(std::to_string(minimum), std::to_string(maximum) + " bytes", std::to_string(*bytes)));
    return std::nullopt;
  }
  return bytes;
}

// ---- Keys more than one table has ----

namespace {

std::string to_upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

}  // namespace

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

void read_key(const TableReader& reader, KeyKind& kind, std::string& header, std::string_view name) {
  auto text = reader.string(name);
  if (!text) return;
  const toml::node& at = *reader.find(name);
  constexpr std::string_view kHeaderPrefix = "header:";
  if (*text == "ip" || *text == "global") {
    kind = *text == "ip" ? KeyKind::ClientAddress : KeyKind::Global;
  } else if (!std::string_view(*text).starts_with(kHeaderPrefix)) {
    reader.error(at, reader.key(name), "expected \"ip\", \"global\" or \"header:NAME\", got \"" + *text + "\"");
  } else if (std::string field = text->substr(kHeaderPrefix.size()); field.empty()) {
    reader.error(at, reader.key(name),
                 "no field name after \"header:\"; name the request field, e.g. \"header:X-Api-Key\"");
  } else if (!is_token(field)) {
    reader.error(at, reader.key(name),
                 "invalid field name \"" + field + "\"; a field name is a token of letters, digits and "
                 "!#$%&'*+-.^_`|~");
  } else {
    kind = KeyKind::Header;
    header = std::move(field);
  }
}

}  // namespace arbiter
