// json-server as a child process: started on port 0, its port read from the kernel's socket table.

#include "tests/support/json_server.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace harness {
namespace {

// The first executable `name` in a directory of PATH; nullopt when there is none.
std::optional<std::string> find_on_path(std::string_view name) {
  const char* path = ::getenv("PATH");
  std::istringstream directories(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string directory; std::getline(directories, directory, ':');) {
    if (directory.empty()) continue;
    const std::string candidate = directory + "/" + std::string(name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// The inode numbers of the sockets process `pid` has open ("socket:[N]" links in /proc/PID/fd).
std::set<std::string> socket_inodes(pid_t pid) {
  std::set<std::string> inodes;
  std::error_code error;
  const std::filesystem::directory_iterator fds("/proc/" + std::to_string(pid) + "/fd", error);
  if (error) return inodes;
  for (const auto& fd : fds) {
    std::error_code link_error;
    const std::string target = std::filesystem::read_symlink(fd.path(), link_error).string();
    constexpr std::string_view kPrefix = "socket:[";
    if (!link_error && target.starts_with(kPrefix) && target.ends_with(']')) {
      inodes.insert(target.substr(kPrefix.size(), target.size() - kPrefix.size() - 1));
    }
  }
  return inodes;
}

// The port of a TCP socket of process `pid` listening on 127.0.0.1; nullopt while it has none.
// /proc/PID/net/tcp lists the sockets of the process's network namespace; a line's fields are
// "sl local_address rem_address st ... inode", addresses as hex "0100007F:PORT", LISTEN is 0A.
std::optional<std::uint16_t> loopback_listening_port(pid_t pid) {
  const std::set<std::string> inodes = socket_inodes(pid);
  if (inodes.empty()) return std::nullopt;
  std::ifstream table("/proc/" + std::to_string(pid) + "/net/tcp");
  std::string line;
  std::getline(table, line);  // the column titles
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
    fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
    constexpr std::string_view kLoopback = "0100007F:";
    if (state == "0A" && local.starts_with(kLoopback) && inodes.contains(inode)) {
      return static_cast<std::uint16_t>(std::stoul(local.substr(kLoopback.size()), nullptr, 16));
    }
  }
  return std::nullopt;
}

}  // namespace

std::filesystem::path json_server_script() {
  return std::filesystem::path(source_dir()) / "tests/json-server/node_modules/json-server/lib/cli/bin.js";
}

JsonServer::JsonServer(const nlohmann::json& database, Milliseconds startup_timeout)
    : database_path_(directory_.path() / "db.json") {
  const std::filesystem::path script = json_server_script();
  if (!std::filesystem::exists(script)) {
    throw std::runtime_error(script.string() + " does not exist: json-server is not installed; run `npm ci` in " +
                             source_dir() + "/tests/json-server (bash .ci/deps does)");
  }
  const std::optional<std::string> node = find_on_path("node");
  if (!node) throw std::runtime_error("node is not on PATH (bash .ci/deps installs it)");
  {
    std::ofstream file(database_path_);
    file << database.dump(2) << '\n';
    if (!file.flush()) throw std::runtime_error("cannot write " + database_path_.string());
  }

  process_ = std::make_unique<ChildProcess>(
      *node, std::vector<std::string>{script.string(), "--port", "0", "--host", "127.0.0.1", database_path_.string()});
  std::optional<std::uint16_t> port;
  const bool listening = eventually(
      [&] {
        port = loopback_listening_port(process_->pid());
        return port.has_value() || !process_->running();
      },
      startup_timeout);
  if (!listening || !port) {
    throw std::runtime_error("json-server " + std::string(listening ? "exited" : "did not listen") +
                             " within " + std::to_string(startup_timeout.count()) + " ms\n" + process_->output_summary());
  }
  port_ = *port;
  // A listening socket queues connections before node's loop accepts them: one answered request
  // says json-server has loaded db.json and serves it.
  HttpClient client(port_, startup_timeout);
  const std::optional<HttpResponse> answer = client.request("GET", "/db");
  if (!answer || answer->status != 200 || nlohmann::json::parse(answer->body, nullptr, false) != database) {
    throw std::runtime_error("json-server did not answer GET /db with the database it was given: " +
                             (answer ? "status " + std::to_string(answer->status) + " " + answer->body : client.last_error()) +
                             "\n" + process_->output_summary());
  }
}

JsonServer::~JsonServer() {
  if (!process_->running()) {
    ADD_FAILURE() << "json-server exited while the test ran\n" << process_->output_summary();
  }
}

nlohmann::json JsonServer::stored_database() const {
  HttpClient client(port_);
  const HttpResponse answer = require(client.request("GET", "/db"), client);
  if (answer.status != 200) {
    throw std::runtime_error("json-server answered GET /db with " + std::to_string(answer.status) + ": " + answer.body);
  }
  try {
    return nlohmann::json::parse(answer.body);
  } catch (const nlohmann::json::exception& error) {
    throw std::runtime_error(std::string("json-server's GET /db is not JSON (") + error.what() + "): " + answer.body);
  }
}

std::optional<nlohmann::json> JsonServer::stored_record(std::string_view collection, std::int64_t id) const {
  const nlohmann::json database = stored_database();
  const auto records = database.find(std::string(collection));
  if (records == database.end() || !records->is_array()) return std::nullopt;
  const auto record = std::find_if(records->begin(), records->end(), [&](const nlohmann::json& candidate) {
    const auto candidate_id = candidate.find("id");
    return candidate_id != candidate.end() && candidate_id->is_number_integer() && candidate_id->get<std::int64_t>() == id;
  });
  if (record == records->end()) return std::nullopt;
  return *record;
}

}  // namespace harness
