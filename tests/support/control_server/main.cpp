// arbiter-test-handlers: the arbiter server with the test-only local handlers of
// test_handlers.h added to every worker and the test-only policy kind [route.held]
// (held_kind.h) beside the product's. Takes `-c FILE` only; the integration tests run it in
// place of arbiter where they need a streaming handler or a policy parked on a delayed store.

#include <csignal>
#include <iostream>
#include <string_view>

#include "proxy/config/config.h"
#include "proxy/net/server.h"
#include "tests/support/control_server/held_kind.h"
#include "tests/support/control_server/test_handlers.h"

int main(int argc, char** argv) {
  if (argc != 3 || std::string_view(argv[1]) != "-c") {
    std::cerr << "usage: arbiter-test-handlers -c FILE\n";
    return 2;
  }
  arbiter::Config config;
  try {
    config = arbiter::load_config_file(argv[2], arbiter::testing::with_held());
  } catch (const arbiter::ConfigError& error) {
    for (const auto& diagnostic : error.diagnostics()) std::cerr << diagnostic.text() << "\n";
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);
  arbiter::Server server(std::move(config));
  server.add_handlers(arbiter::testing::add_test_handlers);
  return server.run();
}
