#pragma once
// The conflicts page's files (proxy/control/ui/), compiled into the binary at build time: the
// definition is generated into the build directory by proxy/control/ui/embed.cmake.

#include <optional>
#include <string_view>

namespace arbiter {

// The bytes of the page file `name` ("index.html", "app.js", "app.css"), static for the life of
// the process; nullopt for a name that is not one of them.
std::optional<std::string_view> ui_asset(std::string_view name) noexcept;

}  // namespace arbiter
