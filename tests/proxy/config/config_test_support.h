#pragma once
// What the configuration tests share.

#include <string>
#include <vector>

#include "proxy/config/config.h"

namespace arbiter::testing {

// The diagnostics parse_config reports for `toml` (read as "arbiter.toml"), as text; empty when
// it accepts the file.
inline std::vector<std::string> config_errors(const std::string& toml) {
  try {
    parse_config(toml, "arbiter.toml");
  } catch (const ConfigError& e) {
    std::vector<std::string> texts;
    for (const ConfigDiagnostic& d : e.diagnostics()) texts.push_back(d.text());
    return texts;
  }
  return {};
}

}  // namespace arbiter::testing
