// arbiter: command line entry point.

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/config/config.h"
#include "proxy/control/control_access.h"
#include "proxy/control/explain.h"
#include "proxy/observe/log.h"
#include "proxy/exchange/runtime.h"
#include "proxy/net/server.h"

namespace {

constexpr std::string_view kUsage =
    "usage: arbiter -c FILE            run with this configuration\n"
    "       arbiter --check -c FILE    validate FILE and print its route table\n"
    "       arbiter explain -c FILE METHOD TARGET [-H 'Name: value']...\n"
    "                                  what Arbiter would do with that request\n"
    "       arbiter hash-token [TOKEN]  the [control] tokens line (sha256 = \"...\") for TOKEN,\n"
    "                                  or for a line read from stdin when TOKEN is left out\n"
    "       arbiter hash-token --new   a new random token, then its sha256 line\n"
    "       arbiter --version\n"
    "options:\n"
    "  -c, --config FILE   configuration file (TOML)\n"
    "  -h, --help          this text\n";

int usage_error(std::string_view message) {
  std::cerr << "arbiter: " << message << "\n" << kUsage;
  return 2;
}

// `arbiter hash-token [TOKEN | --new]`.
int hash_token(int argc, char** argv) {
  if (argc > 3) return usage_error("hash-token takes one TOKEN, --new, or nothing (a line from stdin)");
  std::string token;
  if (argc == 3 && std::string_view(argv[2]) == "--new") {
    try {
      token = arbiter::new_control_token();
    } catch (const std::runtime_error& error) {
      std::cerr << "arbiter: " << error.what() << "\n";
      return 1;
    }
    std::cout << token << "\n";
  } else if (argc == 3) {
    token = argv[2];
  } else if (!std::getline(std::cin, token)) {
    return usage_error("hash-token: no token on stdin");
  }
  if (!token.empty() && token.back() == '\r') token.pop_back();
  if (token.empty()) return usage_error("hash-token: the token is empty");
  std::cout << arbiter::token_hash_line(token) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "hash-token") return hash_token(argc, argv);
  std::string config_path;
  bool check_only = false;
  bool explain = false;
  std::vector<std::string> explain_words;  // METHOD TARGET
  arbiter::HeaderList explain_headers;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (i == 1 && arg == "explain") {
      explain = true;
    } else if (explain && (arg == "-H" || arg == "--header")) {
      if (i + 1 >= argc) return usage_error("-H needs 'Name: value'");
      std::string_view field = argv[++i];
      std::size_t colon = field.find(':');
      if (colon == std::string_view::npos || colon == 0) return usage_error("-H takes 'Name: value'");
      std::string_view value = field.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      explain_headers.add(field.substr(0, colon), value);
    } else if (explain && !arg.starts_with("-")) {
      explain_words.emplace_back(arg);
    } else if (arg == "-c" || arg == "--config") {
      if (i + 1 >= argc) return usage_error("-c needs a file");
      config_path = argv[++i];
    } else if (arg.starts_with("--config=")) {
      config_path = std::string(arg.substr(9));
    } else if (arg == "--check") {
      check_only = true;
    } else if (arg == "--version" || arg == "-V") {
      std::cout << "arbiter " << ARBITER_VERSION << "\n";
      return 0;
    } else if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      return 0;
    } else {
      return usage_error("unknown argument '" + std::string(arg) + "'");
    }
  }
  if (config_path.empty()) return usage_error("no configuration file given");

  arbiter::Config config;
  try {
    config = arbiter::load_config_file(config_path);
  } catch (const arbiter::ConfigError& error) {
    for (const auto& diagnostic : error.diagnostics()) std::cerr << diagnostic.text() << "\n";
    return 1;
  }
  if (explain) {
    if (explain_words.size() != 2) return usage_error("explain takes METHOD TARGET, e.g. explain -c FILE PUT /items/1");
    std::cout << arbiter::explain_request(config, explain_words[0], explain_words[1], explain_headers);
    return 0;
  }
  if (check_only) {
    std::cout << arbiter::format_route_table(config);
    std::cout << arbiter::control_access_summary(config.control) << "\n";
    std::cout << config_path << ": OK\n";
    return 0;
  }

  std::signal(SIGPIPE, SIG_IGN);
  arbiter::Server server(std::move(config));
  return server.run();
}
