// libFuzzer target: see test/fuzz/fs_harness.h and test/fuzz/meson.build.
#include "test/fuzz/fs_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!hf::fs_fuzz::meta_entries(data, size)) __builtin_trap();
  return 0;
}
