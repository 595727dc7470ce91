// Starting the project's own binaries: the paths come from CMake, the ports from their logs.

#include <cstdlib>
#include <stdexcept>

#include "tests/support/harness.h"

namespace harness {
namespace {

std::uint16_t port_of(const LineMatch& match) { return static_cast<std::uint16_t>(std::stoul(match.groups.at(1))); }

LineMatch require_line(ChildProcess& process, const std::regex& pattern, const char* description,
                       Milliseconds timeout) {
  auto match = process.wait_for_line(pattern, timeout);
  if (match) return *match;
  // The wait also ends early when the output does, which usually means the process died.
  const auto exit_status = process.wait_exit(500ms);
  const std::string what = exit_status ? "exited with status " + std::to_string(*exit_status) + " before printing"
                                       : "printed no line within " + std::to_string(timeout.count()) + " ms like";
  throw std::runtime_error(process.executable() + " " + what + " '" + description + "'\n" + process.output_summary());
}

// An [admin] table, a dotted `admin.listen = ...` or an inline `admin = {...}`.
bool configures_admin_listener(std::string_view config_toml) {
  static const std::regex admin(R"((^|\n)[ \t]*(\[[ \t]*admin[ \t]*\]|admin[ \t]*[.=]))");
  return std::regex_search(config_toml.begin(), config_toml.end(), admin);
}

// A binary under test: `name` in ARBITER_TEST_BIN_DIR when that is set (.ci/test runs these
// tests, built once, against the sanitizer build's binaries too), else the one this build made.
std::string binary_under_test(const char* built, std::string_view name) {
  const char* directory = std::getenv("ARBITER_TEST_BIN_DIR");
  if (directory == nullptr || *directory == '\0') return built;
  return std::string(directory) + "/" + std::string(name);
}

}  // namespace

std::string arbiter_binary() { return binary_under_test(ARBITER_BINARY, "arbiter"); }
std::string arbiter_test_handlers_binary() {
  return binary_under_test(ARBITER_TEST_HANDLERS_BINARY, "arbiter-test-handlers");
}
std::string legacy_api_binary() { return binary_under_test(LEGACY_API_BINARY, "legacy-api"); }

bool binaries_sanitized() {
#ifdef ARBITER_SANITIZED
  return true;
#else
  const char* sanitized = std::getenv("ARBITER_TEST_SANITIZED");
  return sanitized != nullptr && std::string_view(sanitized) == "1";
#endif
}
std::string source_dir() { return ARBITER_SOURCE_DIR; }

RunResult run_arbiter(const std::vector<std::string>& arguments, Milliseconds timeout) {
  return run_process(arbiter_binary(), arguments, timeout);
}

LegacyApi::LegacyApi(Milliseconds startup_timeout)
    : process_(std::make_unique<ChildProcess>(legacy_api_binary(), std::vector<std::string>{"--listen", "127.0.0.1:0"})) {
  static const std::regex listening(R"(^legacy-api listening on 127\.0\.0\.1:(\d+)$)");
  const LineMatch line = require_line(*process_, listening, "legacy-api listening on", startup_timeout);
  if (line.stream != Stream::Stdout) throw std::runtime_error("legacy-api announced its port on stderr");
  port_ = port_of(line);
}

ArbiterProcess::ArbiterProcess(std::string_view config_toml, std::vector<std::string> extra_arguments,
                               Milliseconds startup_timeout, ChildEnvironment environment,
                               std::string binary)
    : config_file_(config_toml, ".toml") {
  std::vector<std::string> arguments{"-c", config_file_.path()};
  arguments.insert(arguments.end(), extra_arguments.begin(), extra_arguments.end());
  process_ = std::make_unique<ChildProcess>(binary.empty() ? arbiter_binary() : std::move(binary), std::move(arguments),
                                            std::move(environment));

  static const std::regex listening(R"(arbiter: listening on 127\.0\.0\.1:(\d+))");
  static const std::regex admin_listening(R"(arbiter: admin listening on 127\.0\.0\.1:(\d+))");
  port_ = port_of(require_line(*process_, listening, "arbiter: listening on", startup_timeout));
  if (configures_admin_listener(config_toml)) {
    admin_port_ = port_of(require_line(*process_, admin_listening, "arbiter: admin listening on", startup_timeout));
  }
}

}  // namespace harness
