#include <catch2/catch.hpp>

#include <random>
#include <vector>

#include "fs/range_set.h"

using hf::fs::RangeSet;

TEST_CASE("RangeSet matches a bitmap model under random operations") {
  std::mt19937 rng(11);
  for (int round = 0; round < 50; ++round) {
    RangeSet s;
    std::vector<bool> model(512, false);
    for (int op = 0; op < 200; ++op) {
      uint64_t a = rng() % 512, b = rng() % 513;
      if (a > b) std::swap(a, b);
      if (rng() % 5 == 0) {
        s.truncate(a);
        for (uint64_t i = a; i < 512; ++i) model[i] = false;
      } else {
        s.add(a, b);
        for (uint64_t i = a; i < b; ++i) model[i] = true;
      }
      // Coalesced: no two ranges touch.
      uint64_t prev_end = 0;
      bool first = true;
      for (auto& [st, en] : s.ranges()) {
        REQUIRE(st < en);
        if (!first) REQUIRE(st > prev_end);
        prev_end = en;
        first = false;
      }
      uint64_t x = rng() % 512, y = rng() % 513;
      if (x > y) std::swap(x, y);
      bool all = true, any = false;
      for (uint64_t i = x; i < y; ++i) {
        all = all && model[i];
        any = any || model[i];
      }
      REQUIRE(s.covers(x, y) == all);
      REQUIRE(s.intersects(x, y) == any);
      uint64_t cur = x;
      for (auto& p : s.split(x, y)) {
        REQUIRE(p.start == cur);
        for (uint64_t i = p.start; i < p.end; ++i) REQUIRE(model[i] == p.inside);
        cur = p.end;
      }
      REQUIRE(cur == std::max(x, y));
    }
    uint64_t total = 0;
    for (bool b : model) total += b;
    REQUIRE(s.total() == total);
  }
}
