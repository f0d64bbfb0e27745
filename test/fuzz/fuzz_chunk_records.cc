// libFuzzer target: see test/fuzz/harness.h and test/fuzz/meson.build.
#include "test/fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!hf::xet::fuzz::chunk_records(data, size)) __builtin_trap();
  return 0;
}
