#include "cmd/malloc_tunables.h"

#include <unistd.h>

#include <cstdlib>

namespace hf::cmd {

void reexec_with_malloc_tunables(char** argv) {
  if (std::getenv(kMallocTunedMarker)) {
    // Consumed by glibc at this process's start; children must not inherit them.
    ::unsetenv(kMallocTunedMarker);
    ::unsetenv("GLIBC_TUNABLES");
    return;
  }
  if (std::getenv("GLIBC_TUNABLES")) return;
  ::setenv("GLIBC_TUNABLES", kMallocTunables, 1);
  ::setenv(kMallocTunedMarker, "1", 1);
  ::execv("/proc/self/exe", argv);
  ::unsetenv("GLIBC_TUNABLES");  // no /proc: run untuned
  ::unsetenv(kMallocTunedMarker);
}

}  // namespace hf::cmd
