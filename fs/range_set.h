// A set of byte ranges [start, end), kept sorted and coalesced. Not thread-safe (the owner
// locks). All operations are O(log n + k) in the number of ranges touched.
#pragma once

#include <cstdint>
#include <iterator>
#include <map>
#include <utility>
#include <vector>

namespace hf::fs {

class RangeSet {
 public:
  void add(uint64_t start, uint64_t end) {
    if (start >= end) return;
    auto it = m_.upper_bound(start);
    if (it != m_.begin()) {
      auto prev = std::prev(it);
      if (prev->second >= start) {  // overlaps or touches the previous range
        start = prev->first;
        end = std::max(end, prev->second);
        it = m_.erase(prev);
      }
    }
    while (it != m_.end() && it->first <= end) {
      end = std::max(end, it->second);
      it = m_.erase(it);
    }
    m_.emplace(start, end);
  }

  // Removes everything at or after `pos`.
  void truncate(uint64_t pos) {
    auto it = m_.lower_bound(pos);
    m_.erase(it, m_.end());
    if (!m_.empty()) {
      auto last = std::prev(m_.end());
      if (last->second > pos) last->second = pos;
    }
  }

  bool covers(uint64_t start, uint64_t end) const {
    if (start >= end) return true;
    auto it = m_.upper_bound(start);
    if (it == m_.begin()) return false;
    --it;
    return it->first <= start && it->second >= end;
  }

  bool intersects(uint64_t start, uint64_t end) const {
    if (start >= end) return false;
    auto it = m_.lower_bound(end);
    if (it == m_.begin()) return false;
    --it;
    return it->second > start;
  }

  // Splits [start, end) into consecutive pieces, each either inside the set or outside it.
  struct Piece {
    uint64_t start, end;
    bool inside;
  };
  std::vector<Piece> split(uint64_t start, uint64_t end) const {
    std::vector<Piece> out;
    uint64_t cur = start;
    auto it = m_.upper_bound(start);
    if (it != m_.begin()) --it;
    for (; it != m_.end() && cur < end; ++it) {
      if (it->second <= cur) continue;
      if (it->first > cur) {
        out.push_back({cur, std::min(end, it->first), false});
        cur = std::min(end, it->first);
        if (cur >= end) break;
      }
      uint64_t e = std::min(end, it->second);
      out.push_back({cur, e, true});
      cur = e;
    }
    if (cur < end) out.push_back({cur, end, false});
    return out;
  }

  bool empty() const { return m_.empty(); }
  size_t count() const { return m_.size(); }
  uint64_t total() const {
    uint64_t t = 0;
    for (auto& [s, e] : m_) t += e - s;
    return t;
  }
  const std::map<uint64_t, uint64_t>& ranges() const { return m_; }

 private:
  std::map<uint64_t, uint64_t> m_;  // start -> end
};

}  // namespace hf::fs
