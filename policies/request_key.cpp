#include "policies/request_key.h"

namespace arbiter {

std::string key_name(KeyKind kind, std::string_view header) {
  switch (kind) {
    case KeyKind::ClientAddress: return "ip";
    case KeyKind::Header: return "header:" + std::string(header);
    case KeyKind::Global: return "global";
  }
  return "ip";
}

std::string request_key(const RequestView& request, KeyKind kind, std::string_view header) {
  switch (kind) {
    case KeyKind::ClientAddress: return std::string(request.client_address);
    case KeyKind::Header:
      if (auto value = request.headers.find(header); value && !value->empty()) return "header:" + std::string(*value);
      return std::string(request.client_address);
    case KeyKind::Global: return {};
  }
  return std::string(request.client_address);
}

}  // namespace arbiter
