// libFuzzer target: see test/fuzz/net_harness.h and test/fuzz/meson.build.
#include "test/fuzz/net_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!hf::net_fuzz::hub_json(data, size)) __builtin_trap();
  return 0;
}
