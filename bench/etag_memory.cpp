// Memory per tracked ETag: fills a MemoryVersionStore with one million resources carrying
// minted tags and reports the growth of the resident set per entry.
//
//   build-bench/etag_memory_bench [entries]

#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "policies/etag.h"
#include "policies/memory_version_store.h"

namespace {

long resident_kb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t entries = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000000;
  long before = resident_kb();
  std::size_t heap_before = mallinfo2().uordblks;
  {
    arbiter::MemoryVersionStore store(entries);
    for (std::size_t i = 0; i < entries; ++i) {
      std::string resource = "/accounts/" + std::to_string(i);
      store.put(resource, arbiter::mint_etag(resource));
    }
    long after = resident_kb();
    std::size_t heap_after = mallinfo2().uordblks;
    std::printf("entries            %zu (table holds %zu)\n", entries, store.size());
    std::printf("RSS delta          %.1f bytes/entry\n", (after - before) * 1024.0 / static_cast<double>(entries));
    std::printf("heap in use delta  %.1f bytes/entry\n",
                static_cast<double>(heap_after - heap_before) / static_cast<double>(entries));
  }
  return 0;
}
