// Lost updates under concurrent read-modify-write clients (run by bench/lost-updates).
//
//   build-bench/lost_update_bench --port P --path /accounts/1 --clients 8 --increments 50
//                                 --field balance [--time-limit 60] [--json]
//
// Each of `clients` threads, on its own keep-alive connection to 127.0.0.1:P, makes
// `increments` increments of the integer member `field` of the JSON object at `path`: GET it
// (keeping its ETag when there is one), PUT the whole object back with the field + 1,
// `Content-Type: application/json` and `If-Match: <etag>` when it had one. A 409 or 412 means
// another client wrote first: the client reads again and reapplies its increment (a conflict
// retried). Anything else (another status, a transport failure, a body without the integer
// field, 1000 conflicts in a row) is an error: that increment is given up and the client goes
// on with the next one on a new connection. After `--time-limit` seconds the clients stop.
//
// Then it reads the object once more and reports
//   expected = the value read first + the increments acknowledged (a 2xx answer to the PUT)
//   actual   = the value read at the end
//   lost     = expected - actual
// which holds only while nobody else writes the object during the run.
//
// Output: aligned lines, or with --json one JSON object. Exit status: 0 when it ran without
// errors, whatever was lost (it measures); 1 on errors; 2 on a wrong command line.

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <latch>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/command_line.h"
#include "tests/support/harness.h"

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kUsage =
    "usage: lost_update_bench --port P --path /accounts/1 --clients 8 --increments 50 --field balance\n"
    "                         [--time-limit SECONDS (60)] [--json]\n";
constexpr auto kRequestTimeout = std::chrono::milliseconds(5000);
constexpr int kMaxAttemptsPerIncrement = 1000;
constexpr std::size_t kErrorsShown = 5;

struct Options {
  std::uint16_t port = 0;
  std::string path;
  int clients = 0;
  int increments = 0;
  std::string field;
  int time_limit_seconds = 60;
  bool json_output = false;
};

using bench::parse_number;

std::optional<Options> parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view name = argv[i];
    if (name == "--json") {
      options.json_output = true;
      continue;
    }
    if (i + 1 >= argc) return std::nullopt;
    const char* value = argv[++i];
    std::optional<long> number;
    if (name == "--port" && (number = parse_number(value, 1, 65535))) {
      options.port = static_cast<std::uint16_t>(*number);
    } else if (name == "--path" && value[0] == '/') {
      options.path = value;
    } else if (name == "--clients" && (number = parse_number(value, 1, 1000))) {
      options.clients = static_cast<int>(*number);
    } else if (name == "--increments" && (number = parse_number(value, 1, 1000000))) {
      options.increments = static_cast<int>(*number);
    } else if (name == "--field" && value[0] != '\0') {
      options.field = value;
    } else if (name == "--time-limit" && (number = parse_number(value, 1, 86400))) {
      options.time_limit_seconds = static_cast<int>(*number);
    } else {
      return std::nullopt;
    }
  }
  if (options.port == 0 || options.path.empty() || options.clients == 0 || options.increments == 0 ||
      options.field.empty()) {
    return std::nullopt;
  }
  return options;
}

// A keep-alive connection that is opened again after the server closed it or a request failed.
class Connection {
 public:
  explicit Connection(std::uint16_t port) : port_(port) {}

  // The response, or nullopt with error() saying why.
  std::optional<harness::HttpResponse> request(std::string_view method, std::string_view target,
                                               const harness::HeaderPairs& headers = {},
                                               std::string_view body = {}) {
    if (!client_) client_.emplace(port_, kRequestTimeout);
    std::optional<harness::HttpResponse> response;
    if (client_->connect_ok()) response = client_->request(method, target, headers, body);
    if (!response) error_ = client_->last_error();
    if (!response || !response->keep_alive) client_.reset();
    return response;
  }
  const std::string& error() const { return error_; }

 private:
  std::uint16_t port_;
  std::optional<harness::HttpClient> client_;
  std::string error_;
};

struct Totals {
  std::atomic<long> acknowledged{0};
  std::atomic<long> conflicts_retried{0};
  std::atomic<long> errors{0};
  std::atomic<long> reads_strong_etag{0};
  std::atomic<long> reads_weak_etag{0};
  std::atomic<long> reads_no_etag{0};

  std::mutex mutex;
  std::vector<std::string> first_errors;  // at most kErrorsShown, for stderr

  void error(std::string what) {
    ++errors;
    std::lock_guard lock(mutex);
    if (first_errors.size() < kErrorsShown) first_errors.push_back(std::move(what));
  }
};

struct Document {
  json body;
  std::int64_t value = 0;
  std::optional<std::string> etag;
};

std::string describe(const harness::HttpResponse& response) {
  std::string body = response.body.substr(0, 200);
  for (char& c : body) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return std::to_string(response.status) + " " + body;
}

// The document at options.path; nullopt with `error` set if it cannot be read or has no integer field.
std::optional<Document> read_document(Connection& connection, const Options& options, std::string& error) {
  auto response = connection.request("GET", options.path);
  if (!response) {
    error = "GET: " + connection.error();
    return std::nullopt;
  }
  if (response->status != 200) {
    error = "GET answered " + describe(*response);
    return std::nullopt;
  }
  Document document;
  document.body = json::parse(response->body, nullptr, false);
  if (!document.body.is_object() || !document.body.contains(options.field) ||
      !document.body[options.field].is_number_integer()) {
    error = "GET: no integer \"" + options.field + "\" in " + describe(*response);
    return std::nullopt;
  }
  document.value = document.body[options.field].get<std::int64_t>();
  document.etag = response->header("ETag");
  return document;
}

void count_etag(const Document& document, Totals& totals) {
  if (!document.etag) {
    ++totals.reads_no_etag;
  } else if (document.etag->starts_with("W/")) {
    ++totals.reads_weak_etag;
  } else {
    ++totals.reads_strong_etag;
  }
}

void run_client(int index, const Options& options, Clock::time_point deadline, std::latch& start, Totals& totals) {
  Connection connection(options.port);
  const std::string who = "client " + std::to_string(index) + ": ";
  start.arrive_and_wait();
  for (int increment = 0; increment < options.increments; ++increment) {
    for (int attempt = 0;; ++attempt) {
      if (Clock::now() >= deadline) {
        totals.error(who + "time limit reached after " + std::to_string(increment) + " increments");
        return;
      }
      if (attempt == kMaxAttemptsPerIncrement) {
        totals.error(who + std::to_string(attempt) + " conflicts in a row");
        break;
      }
      std::string error;
      auto document = read_document(connection, options, error);
      if (!document) {
        totals.error(who + error);
        break;
      }
      count_etag(*document, totals);
      document->body[options.field] = document->value + 1;
      harness::HeaderPairs headers{{"Content-Type", "application/json"}};
      if (document->etag) headers.emplace_back("If-Match", *document->etag);
      auto write = connection.request("PUT", options.path, headers, document->body.dump());
      if (!write) {
        totals.error(who + "PUT: " + connection.error());
        break;
      }
      if (write->status >= 200 && write->status < 300) {
        ++totals.acknowledged;
        break;
      }
      if (write->status == 409 || write->status == 412) {
        ++totals.conflicts_retried;
        continue;
      }
      totals.error(who + "PUT answered " + describe(*write));
      break;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::optional<Options> parsed = parse_options(argc, argv);
  if (!parsed) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const Options& options = *parsed;

  std::string error;
  Connection reader(options.port);
  const std::optional<Document> initial = read_document(reader, options, error);
  if (!initial) {
    std::fprintf(stderr, "lost_update_bench: first read of %s: %s\n", options.path.c_str(), error.c_str());
    return 1;
  }

  Totals totals;
  std::latch start(options.clients + 1);
  const auto deadline = Clock::now() + std::chrono::seconds(options.time_limit_seconds);
  std::vector<std::thread> clients;
  for (int i = 0; i < options.clients; ++i) {
    clients.emplace_back(run_client, i, std::cref(options), deadline, std::ref(start), std::ref(totals));
  }
  start.arrive_and_wait();
  const auto started = Clock::now();
  for (auto& client : clients) client.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();

  const std::optional<Document> final_state = read_document(reader, options, error);
  if (!final_state) totals.error("final read: " + error);
  for (const auto& message : totals.first_errors) std::fprintf(stderr, "lost_update_bench: %s\n", message.c_str());
  if (totals.errors > static_cast<long>(totals.first_errors.size())) {
    std::fprintf(stderr, "lost_update_bench: ... %ld errors in all\n", totals.errors.load());
  }

  const long planned = static_cast<long>(options.clients) * options.increments;
  const std::int64_t expected = initial->value + totals.acknowledged;
  json report{{"port", options.port},
              {"resource", options.path},
              {"field", options.field},
              {"clients", options.clients},
              {"increments", options.increments},
              {"initial", initial->value},
              {"planned", planned},
              {"acknowledged", totals.acknowledged.load()},
              {"expected", expected},
              {"actual", final_state ? json(final_state->value) : json(nullptr)},
              {"lost", final_state ? json(expected - final_state->value) : json(nullptr)},
              {"conflicts_retried", totals.conflicts_retried.load()},
              {"errors", totals.errors.load()},
              {"elapsed_s", std::round(elapsed * 1000) / 1000},
              {"reads", {{"strong_etag", totals.reads_strong_etag.load()},
                         {"weak_etag", totals.reads_weak_etag.load()},
                         {"no_etag", totals.reads_no_etag.load()}}}};
  if (options.json_output) {
    std::printf("%s\n", report.dump().c_str());
  } else {
    std::printf("lost_update_bench: %d clients x %d increments of \"%s\" at 127.0.0.1:%u%s\n", options.clients,
                options.increments, options.field.c_str(), options.port, options.path.c_str());
    std::printf("  reads by ETag      strong %ld, weak %ld, none %ld\n", totals.reads_strong_etag.load(),
                totals.reads_weak_etag.load(), totals.reads_no_etag.load());
    std::printf("  initial            %lld\n", static_cast<long long>(initial->value));
    std::printf("  acknowledged       %ld of %ld\n", totals.acknowledged.load(), planned);
    std::printf("  expected           %lld\n", static_cast<long long>(expected));
    std::printf("  actual             %s\n", report["actual"].dump().c_str());
    std::printf("  lost updates       %s\n", report["lost"].dump().c_str());
    std::printf("  conflicts retried  %ld\n", totals.conflicts_retried.load());
    std::printf("  errors             %ld\n", totals.errors.load());
    std::printf("  elapsed            %.3f s\n", elapsed);
  }
  return totals.errors == 0 ? 0 : 1;
}
