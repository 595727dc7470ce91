// Lock leases under load (run by bench/locks).
//
//   build-bench/lock_contention_bench cycle --port P --path /items/1 --pairs N
//   build-bench/lock_contention_bench increments --port P --path /accounts/1 --field balance
//                                    --clients 8 --increments 25
//
// cycle: on one keep-alive connection, N times LOCK then UNLOCK of `path` (the pair's cost is
// measured from outside, as the CPU time Arbiter spent meanwhile). Every LOCK must answer 200 and
// every UNLOCK 204.
// increments: each of `clients` threads, on its own keep-alive connection, makes `increments`
// increments of the integer member `field` of the JSON object at `path`: LOCK (the route queues it
// with `wait`; a 423 after the wait is retried and counted), GET, PUT the object with the field + 1
// and If: (<token>), UNLOCK. Then it reads the object once more: lost = initial + increments - final.
//
// Output: one JSON object on stdout (requests, seconds, requests_per_second, retries, ...).
// Exit status: 0 when every request answered as expected (and nothing was lost); 1 otherwise;
// 2 on a wrong command line.

#include <atomic>
#include <chrono>
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
    "usage: lock_contention_bench cycle --port P --path /items/1 --pairs N\n"
    "       lock_contention_bench increments --port P --path /accounts/1 --field balance --clients 8 "
    "--increments 25\n";
constexpr auto kRequestTimeout = std::chrono::milliseconds(120'000);
constexpr int kMaxLockAttempts = 100;

struct Options {
  std::string mode;
  std::uint16_t port = 0;
  std::string path;
  std::string field = "balance";
  long pairs = 0;
  int clients = 0;
  int increments = 0;
};

using bench::parse_number;

std::optional<Options> parse_options(int argc, char** argv) {
  if (argc < 2) return std::nullopt;
  Options options;
  options.mode = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string_view name = argv[i];
    const char* value = argv[i + 1];
    std::optional<long> number;
    if (name == "--port" && (number = parse_number(value, 1, 65535))) {
      options.port = static_cast<std::uint16_t>(*number);
    } else if (name == "--path" && value[0] == '/') {
      options.path = value;
    } else if (name == "--field" && value[0] != '\0') {
      options.field = value;
    } else if (name == "--pairs" && (number = parse_number(value, 1, 100'000'000))) {
      options.pairs = *number;
    } else if (name == "--clients" && (number = parse_number(value, 1, 1000))) {
      options.clients = static_cast<int>(*number);
    } else if (name == "--increments" && (number = parse_number(value, 1, 1'000'000))) {
      options.increments = static_cast<int>(*number);
    } else {
      return std::nullopt;
    }
  }
  if (argc % 2 != 0 || options.port == 0 || options.path.empty()) return std::nullopt;
  if (options.mode == "cycle" && options.pairs > 0) return options;
  if (options.mode == "increments" && options.clients > 0 && options.increments > 0) return options;
  return std::nullopt;
}

std::string token_of(const harness::HttpResponse& response) {
  std::string field = response.header("Lock-Token").value_or("");
  if (field.size() < 3 || field.front() != '<' || field.back() != '>') return {};
  return field.substr(1, field.size() - 2);
}

std::string describe(std::string_view what, const std::optional<harness::HttpResponse>& response,
                     const harness::HttpClient& client) {
  if (!response) return std::string(what) + ": " + client.last_error();
  return std::string(what) + " answered " + std::to_string(response->status) + " " + response->body.substr(0, 200);
}

int cycle(const Options& options) {
  harness::HttpClient client(options.port, kRequestTimeout);
  const auto started = Clock::now();
  for (long i = 0; i < options.pairs; ++i) {
    auto locked = client.request("LOCK", options.path);
    if (!locked || locked->status != 200) {
      std::fprintf(stderr, "lock_contention_bench: %s\n", describe("LOCK", locked, client).c_str());
      return 1;
    }
    auto released = client.request("UNLOCK", options.path, {{"Lock-Token", "<" + token_of(*locked) + ">"}});
    if (!released || released->status != 204) {
      std::fprintf(stderr, "lock_contention_bench: %s\n", describe("UNLOCK", released, client).c_str());
      return 1;
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  json report{{"mode", "cycle"},         {"resource", options.path}, {"pairs", options.pairs},
              {"requests", 2 * options.pairs}, {"seconds", seconds},   {"pairs_per_second", options.pairs / seconds}};
  std::printf("%s\n", report.dump().c_str());
  return 0;
}

std::optional<std::int64_t> read_value(harness::HttpClient& client, const Options& options, std::string& error) {
  auto response = client.request("GET", options.path);
  if (!response || response->status != 200) {
    error = describe("GET", response, client);
    return std::nullopt;
  }
  json body = json::parse(response->body, nullptr, false);
  if (!body.is_object() || !body[options.field].is_number_integer()) {
    error = "GET: no integer \"" + options.field + "\" in " + response->body.substr(0, 200);
    return std::nullopt;
  }
  return body[options.field].get<std::int64_t>();
}

int increments(const Options& options) {
  std::string error;
  harness::HttpClient reader(options.port, kRequestTimeout);
  auto initial = read_value(reader, options, error);
  if (!initial) {
    std::fprintf(stderr, "lock_contention_bench: first read: %s\n", error.c_str());
    return 1;
  }
  std::atomic<long> requests{0}, retries{0}, acknowledged{0};
  std::mutex mutex;
  std::vector<std::string> errors;
  std::latch start(options.clients + 1);
  std::vector<std::thread> clients;
  for (int c = 0; c < options.clients; ++c) {
    clients.emplace_back([&, c] {
      harness::HttpClient client(options.port, kRequestTimeout);
      auto fail = [&](const std::string& what) {
        std::lock_guard lock(mutex);
        errors.push_back("client " + std::to_string(c) + ": " + what);
      };
      start.arrive_and_wait();
      for (int i = 0; i < options.increments; ++i) {
        std::string token;
        for (int attempt = 0; token.empty(); ++attempt) {
          if (attempt == kMaxLockAttempts) return fail("no lock after " + std::to_string(attempt) + " LOCKs");
          auto locked = client.request("LOCK", options.path);
          ++requests;
          if (locked && locked->status == 423) {
            ++retries;
            continue;
          }
          if (!locked || locked->status != 200) return fail(describe("LOCK", locked, client));
          token = token_of(*locked);
        }
        auto document = client.request("GET", options.path);
        ++requests;
        json body = document ? json::parse(document->body, nullptr, false) : json();
        if (!document || document->status != 200 || !body.is_object() || !body[options.field].is_number_integer()) {
          return fail(describe("GET", document, client));
        }
        body[options.field] = body[options.field].get<std::int64_t>() + 1;
        auto written = client.request("PUT", options.path,
                                      {{"Content-Type", "application/json"}, {"If", "(<" + token + ">)"}}, body.dump());
        ++requests;
        if (!written || written->status < 200 || written->status > 299) return fail(describe("PUT", written, client));
        ++acknowledged;
        auto released = client.request("UNLOCK", options.path, {{"Lock-Token", "<" + token + ">"}});
        ++requests;
        if (!released || released->status != 204) return fail(describe("UNLOCK", released, client));
      }
    });
  }
  start.arrive_and_wait();
  const auto started = Clock::now();
  for (auto& thread : clients) thread.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  auto final_value = read_value(reader, options, error);
  if (!final_value) errors.push_back("final read: " + error);
  for (const auto& message : errors) std::fprintf(stderr, "lock_contention_bench: %s\n", message.c_str());
  const std::int64_t expected = *initial + acknowledged.load();
  json report{{"mode", "increments"},
              {"resource", options.path},
              {"clients", options.clients},
              {"increments", options.increments},
              {"acknowledged", acknowledged.load()},
              {"expected", expected},
              {"actual", final_value ? json(*final_value) : json(nullptr)},
              {"lost", final_value ? json(expected - *final_value) : json(nullptr)},
              {"requests", requests.load()},
              {"retries", retries.load()},
              {"errors", errors.size()},
              {"seconds", seconds},
              {"requests_per_second", static_cast<double>(requests.load()) / seconds},
              {"increments_per_second", static_cast<double>(acknowledged.load()) / seconds}};
  std::printf("%s\n", report.dump().c_str());
  return errors.empty() && final_value && *final_value == expected ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::optional<Options> options = parse_options(argc, argv);
  if (!options) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  return options->mode == "cycle" ? cycle(*options) : increments(*options);
}
