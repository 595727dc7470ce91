// libFuzzer harness: the configuration loader, with the input as the text of the file.
//
// parse_config is what `arbiter --check`, the start and every reload go through
// (load_config_file reads the file and calls it). A bad file must come back as a ConfigError
// with at least one diagnostic, each with a position inside the text; anything else thrown, or a
// crash, is a bug. A file it accepts must then be usable as `--check`, GET /config, a reload
// and `arbiter explain` use it: its route table and JSON are made, its Runtime (router and
// policies, whose constructors throw on values the loader should have refused) is built, twice
// over the same state as a reload would, and two requests are explained.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "proxy/config/config.h"
#include "proxy/control/config_json.h"
#include "proxy/control/explain.h"
#include "proxy/exchange/runtime.h"

namespace {

[[noreturn]] void fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "config_fuzz: %s %.*s\n", what, static_cast<int>(detail.size()), detail.data());
  __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace arbiter;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Config config;
  try {
    config = parse_config(text, "fuzz.toml");
  } catch (const ConfigError& error) {
    if (error.diagnostics().empty()) fail("a ConfigError without a diagnostic");
    auto lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;
    for (const ConfigDiagnostic& diagnostic : error.diagnostics()) {
      std::string line = diagnostic.text();
      if (diagnostic.message.empty()) fail("a diagnostic without a message:", line);
      if (diagnostic.line < 0 || diagnostic.line > lines || diagnostic.column < 0) fail("a diagnostic outside the text:", line);
    }
    return 0;
  }
  std::string table = format_route_table(config);
  if (config.routes.empty() || config.upstreams.empty()) fail("a configuration without a route or an upstream passed");
  std::string json = config_to_json(config);
  if (!nlohmann::json::accept(json)) fail("GET /config would not be JSON:", json);
  RuntimeState state;
  Runtime runtime(config, state);
  Runtime reloaded(config, state);
  for (const RouteConfig& route : config.routes) {
    if (!config.find_upstream(route.upstream)) fail("a route names an unknown upstream:", route.upstream);
  }
  HeaderList headers{{"Host", "fuzz"}, {"If-Match", "\"v1\""}};
  explain_request(config, "GET", "/", headers);
  explain_request(config, "PUT", "/items/1?x=1", headers);
  return 0;
}
