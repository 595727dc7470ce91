#pragma once
// json-server (typicode/json-server 0.17.4, pinned with its lockfile in tests/json-server/ and
// installed there by `npm ci`, which .ci/deps runs) as a real third-party backend for the
// integration tests: an Express application with its own weak ETags, CORS and caching fields,
// PUT replacing a record and PATCH merging into it, numeric ids.

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "tests/support/harness.h"

namespace harness {

// The entry point json-server's package declares (its "bin"), under tests/json-server/.
std::filesystem::path json_server_script();

// One json-server process serving a db.json of its own, on a loopback port the kernel chooses.
// Started without --watch: json-server never reloads the file behind a test's back, and the test
// never writes it after the start, so nothing depends on when a file watcher fires.
class JsonServer {
 public:
  // Writes `database` (collection name → array of records with a numeric "id") as db.json into a
  // fresh TempDirectory, starts `node json_server_script() --port 0 --host 127.0.0.1 db.json`
  // (node from PATH), finds the port its listening socket got (/proc/PID/net/tcp) and returns
  // once json-server has answered a request. Throws std::runtime_error, with its output, if node
  // or json-server is missing, or json-server exits or does not answer within `startup_timeout`.
  explicit JsonServer(const nlohmann::json& database, Milliseconds startup_timeout = 10s);
  // Fails the current test (ADD_FAILURE, with json-server's output) if json-server exited while
  // it ran; then kills it (SIGKILL) and removes its directory.
  ~JsonServer();
  JsonServer(const JsonServer&) = delete;
  JsonServer& operator=(const JsonServer&) = delete;

  std::uint16_t port() const { return port_; }
  ChildProcess& process() { return *process_; }
  // db.json, as written before the start; json-server rewrites it some time after each write.
  const std::filesystem::path& database_path() const { return database_path_; }

  // The whole database as json-server holds it: its answer to GET /db, asked directly (not
  // through Arbiter). json-server changes its in-memory database before it answers a write, so
  // once a write's response has arrived this shows its result. db.json itself is not read: the
  // CLI persists it asynchronously (lowdb's FileAsync: a temporary file renamed into place,
  // not awaited), after the write's response may already have left. Throws std::runtime_error
  // if json-server does not answer 200 with JSON.
  nlohmann::json stored_database() const;
  std::optional<nlohmann::json> stored_record(std::string_view collection, std::int64_t id) const;

 private:
  TempDirectory directory_;  // declared first: outlives the process that writes into it
  std::filesystem::path database_path_;
  std::unique_ptr<ChildProcess> process_;
  std::uint16_t port_ = 0;
};

}  // namespace harness
