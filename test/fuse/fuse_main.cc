// Catch main for the real-mount suites: they need root and /dev/fuse; without them the suite
// is skipped (exit 77, meson's "skip").
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
    std::fprintf(stderr, "skipping: real FUSE mounts need root and /dev/fuse\n");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
