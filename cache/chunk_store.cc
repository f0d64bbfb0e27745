#include "cache/chunk_store.h"

#include <dirent.h>
#include <fmt/format.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <list>
#include <map>
#include <unordered_map>

#include "base/clock.h"
#include "base/log.h"
#include "base/text.h"

namespace hf::cache {

namespace {

constexpr std::string_view kComponent = "chunk-store";

constexpr char kMagic[7] = {'H', 'F', 'R', 'U', 'N', '\0', '\x01'};
constexpr uint8_t kFormatVersion = 1;
constexpr size_t kHeaderSize = 64;
constexpr size_t kEntrySize = 24;
constexpr size_t kTableSumSize = 8;

constexpr int64_t kNever = INT64_MIN;
constexpr int64_t kRelistNs = 100'000'000;          // re-list a xorb dir at most every 100 ms
constexpr int64_t kTouchNs = 60'000'000'000;        // bump a run's mtime at most every 60 s
constexpr int64_t kNlinkCheckNs = 1'000'000'000;    // notice runs unlinked by others within 1 s
constexpr int64_t kReconcileNs = 600'000'000'000;   // full rescan at least every 10 min
constexpr int64_t kStaleTmpNs = 3600'000'000'000;   // orphan tmp entries older than 1 h
constexpr size_t kFdCacheCapacity = 256;
constexpr size_t kIoBatchBytes = 256 * 1024;  // checksum while the bytes are still in L2
constexpr size_t kShards = 16;
constexpr size_t kMaxXorbsPerShard = 4096;
constexpr uint64_t kBlock = 4096;

constexpr uint64_t kStateMagic = 0x3145544154534348ull;  // "HCSTATE1" little-endian
constexpr size_t kStateSize = 4096;
constexpr size_t kStateMagicOff = 0, kStateUsedOff = 16, kStateReconcileOff = 24;
constexpr size_t kStateBootOff = 32, kBootIdLen = 36;

uint64_t round_block(uint64_t n) { return (n + kBlock - 1) & ~(kBlock - 1); }

void put_le32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_le64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get_le32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t get_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

int64_t mtime_ns(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

Error errno_error(std::string_view what, const std::string& path, int err) {
  Errc c = Errc::io;
  if (err == ENOSPC || err == EDQUOT) c = Errc::no_space;
  else if (err == EACCES || err == EPERM) c = Errc::permission_denied;
  else if (err == EROFS) c = Errc::read_only;
  return make_error(c, fmt::format("{} {}: {}", what, path, std::strerror(err)));
}

Status mkdir_0700(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) return {};
  return errno_error("mkdir", path, errno);
}

// Parses "<first>-<end>.run" (canonical decimal) with first < end <= 2^32 and a bounded count.
bool parse_run_name(std::string_view name, uint32_t* first, uint64_t* end) {
  if (name.size() < 7 || !name.ends_with(".run")) return false;
  name.remove_suffix(4);
  size_t dash = name.find('-');
  if (dash == std::string_view::npos) return false;
  auto f = parse_u64(name.substr(0, dash));
  auto e = parse_u64(name.substr(dash + 1));
  if (!f || !e || *f >= *e || *e > (1ull << 32) || *e - *f > DiskChunkStore::kMaxRunChunks)
    return false;
  // Canonical spelling only ("007-9.run" is not a run), so a range has exactly one file name.
  if (fmt::format("{}-{}", *f, *e) != name) return false;
  *first = static_cast<uint32_t>(*f);
  *end = *e;
  return true;
}

struct DirCloser {
  void operator()(DIR* d) const { if (d) ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

// Removes a directory's regular files, then the directory (one level: tmp dirs are flat).
void remove_flat_dir(const std::string& dir) {
  DirPtr d(::opendir(dir.c_str()));
  if (d) {
    while (dirent* de = ::readdir(d.get())) {
      if (std::strcmp(de->d_name, ".") == 0 || std::strcmp(de->d_name, "..") == 0) continue;
      ::unlinkat(::dirfd(d.get()), de->d_name, 0);
    }
  }
  ::rmdir(dir.c_str());
}

struct RunEntry {
  uint32_t len;
  uint64_t off;
  uint64_t xxh;
};

struct RunTable {
  uint64_t file_size = 0;
  std::vector<RunEntry> entries;
};

// An open run file. Closing is deferred to the last reference, so a read in progress keeps its
// fd even if the fd cache drops it or the run is evicted (unlinked) meanwhile.
struct OpenFile {
  int fd = -1;
  dev_t dev = 0;
  ino_t ino = 0;
  std::atomic<int64_t> nlink_checked_ns{0};
  ~OpenFile() {
    if (fd >= 0) ::close(fd);
  }
};

struct Run {
  uint64_t id = 0;       // process-unique, keys the fd cache
  uint32_t first = 0;
  uint64_t end = 0;      // exclusive; may be 2^32
  std::string path;
  int64_t added_ns = 0;  // mono time this object was created
  std::mutex load_mu;    // serializes the one-time header/table load
  std::atomic<const RunTable*> table{nullptr};
  std::unique_ptr<const RunTable> table_owner;  // written once under load_mu
  std::atomic<int64_t> touched_ns{kNever};

  bool covers(uint32_t i) const { return first <= i && i < end; }
};
using RunPtr = std::shared_ptr<Run>;

// Small LRU of open run files.
class FdCache {
 public:
  std::shared_ptr<OpenFile> find(uint64_t id) {
    std::lock_guard lk(mu_);
    auto it = map_.find(id);
    if (it == map_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }
  void insert(uint64_t id, std::shared_ptr<OpenFile> f) {
    std::shared_ptr<OpenFile> victim;  // closed outside the lock
    std::lock_guard lk(mu_);
    auto it = map_.find(id);
    if (it != map_.end()) {
      victim = std::move(it->second->second);
      it->second->second = std::move(f);
      lru_.splice(lru_.begin(), lru_, it->second);
      return;
    }
    lru_.emplace_front(id, std::move(f));
    map_.emplace(id, lru_.begin());
    if (map_.size() > kFdCacheCapacity) {
      victim = std::move(lru_.back().second);
      map_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }
  void erase(uint64_t id) {
    std::shared_ptr<OpenFile> victim;
    std::lock_guard lk(mu_);
    auto it = map_.find(id);
    if (it == map_.end()) return;
    victim = std::move(it->second->second);
    lru_.erase(it->second);
    map_.erase(it);
  }
  void clear() {
    std::list<std::pair<uint64_t, std::shared_ptr<OpenFile>>> victims;
    std::lock_guard lk(mu_);
    map_.clear();
    victims.swap(lru_);
  }

 private:
  std::mutex mu_;
  std::list<std::pair<uint64_t, std::shared_ptr<OpenFile>>> lru_;
  std::unordered_map<uint64_t, std::list<std::pair<uint64_t, std::shared_ptr<OpenFile>>>::iterator>
      map_;
};

// The known runs of one xorb, sorted by `first`.
struct XorbRuns {
  std::vector<RunPtr> runs;
  uint64_t max_len = 0;        // longest run ever inserted: bounds the backward search
  int64_t listed_ns = kNever;  // mono time of the last directory listing

  // The covering run that extends furthest, or null.
  RunPtr find(uint32_t index) const {
    auto it = std::upper_bound(runs.begin(), runs.end(), index,
                               [](uint32_t i, const RunPtr& r) { return i < r->first; });
    RunPtr best;
    while (it != runs.begin()) {
      --it;
      const Run& r = **it;
      if (uint64_t{r.first} + max_len <= index) break;  // no earlier run can reach index
      if (r.covers(index) && (!best || r.end > best->end)) best = *it;
    }
    return best;
  }
  bool covers_range(uint32_t first, uint64_t end) const {
    RunPtr r = find(first);
    return r && r->end >= end;
  }
  bool has_exact(uint32_t first, uint64_t end) const {
    auto it = std::lower_bound(runs.begin(), runs.end(), first,
                               [](const RunPtr& r, uint32_t f) { return r->first < f; });
    for (; it != runs.end() && (*it)->first == first; ++it)
      if ((*it)->end == end) return true;
    return false;
  }
  void insert(RunPtr r) {
    max_len = std::max<uint64_t>(max_len, r->end - r->first);
    auto it = std::upper_bound(runs.begin(), runs.end(), r->first,
                               [](uint32_t f, const RunPtr& x) { return f < x->first; });
    runs.insert(it, std::move(r));
  }
  void assign(std::vector<RunPtr> v) {
    std::sort(v.begin(), v.end(), [](const RunPtr& a, const RunPtr& b) {
      return a->first != b->first ? a->first < b->first : a->end < b->end;
    });
    runs = std::move(v);
    max_len = 0;
    for (const RunPtr& r : runs) max_len = std::max<uint64_t>(max_len, r->end - r->first);
  }
};

struct Shard {
  std::mutex mu;
  std::unordered_map<Key32, XorbRuns, Key32Hash> xorbs;
};

enum class Outcome { ok, gone, corrupt, transient };

struct Candidate {
  std::string path;
  int64_t mtime = 0;
  uint64_t charge = 0;
  ino_t ino = 0;
  bool named = false;  // a valid run name under a valid xorb dir: key/first/end are meaningful
  Key32 xorb{};
  uint32_t first = 0;
  uint64_t end = 0;
};

}  // namespace

struct DiskChunkStore::Impl {
  DiskChunkStoreOptions opts;
  std::string root, v1, tmp, own_tmp, own_lock_path;
  int own_lock_fd = -1, evict_fd = -1, state_fd = -1;
  uint8_t* state = nullptr;

  std::array<Shard, kShards> shards;
  FdCache fds;
  std::mutex evict_mu;  // one eviction pass per process (flock does not exclude our own fd)

  std::atomic<uint64_t> next_run_id{1}, next_tmp{0};
  std::atomic<uint64_t> hits{0}, misses{0}, corrupt_dropped{0}, runs_written{0},
      bytes_written{0}, puts_skipped_full{0}, runs_evicted{0}, bytes_evicted{0};
  std::atomic<uint32_t> corrupt_logged{0};

  ~Impl() {
    fds.clear();
    if (!own_tmp.empty()) remove_flat_dir(own_tmp);
    if (!own_lock_path.empty()) ::unlink(own_lock_path.c_str());
    if (own_lock_fd >= 0) ::close(own_lock_fd);
    if (state) ::munmap(state, kStateSize);
    if (state_fd >= 0) ::close(state_fd);
    if (evict_fd >= 0) ::close(evict_fd);
  }

  // ---- shared state (usage counter) ----
  std::atomic_ref<uint64_t> state_u64(size_t off) const {
    return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(state + off));
  }
  uint64_t used() const {
    int64_t v = static_cast<int64_t>(state_u64(kStateUsedOff).load(std::memory_order_relaxed));
    return v < 0 ? 0 : static_cast<uint64_t>(v);
  }
  // Adds n to the shared usage unless that would exceed the bound (a CAS loop, so the counter
  // itself never goes over max_bytes because of a reservation).
  bool try_reserve(uint64_t n) {
    auto a = state_u64(kStateUsedOff);
    uint64_t cur = a.load();
    for (;;) {
      const int64_t used_now = std::max<int64_t>(0, static_cast<int64_t>(cur));
      if (static_cast<uint64_t>(used_now) + n > opts.max_bytes) return false;
      if (a.compare_exchange_weak(cur, cur + n)) return true;
    }
  }
  // Only called under the evict flock (evictor unlinks, reconcile). Other paths that remove a
  // reserved file (failed or duplicate writes, corrupt drops) deliberately leak the
  // reservation: releasing it concurrently with a scan could make the reconcile subtract it a
  // second time (an undercount); a leak is an overcount that the next reconcile removes.
  void release_locked(uint64_t n) { state_u64(kStateUsedOff).fetch_sub(n); }

  uint64_t high_watermark() const { return opts.max_bytes / 20 * 19; }
  uint64_t low_watermark() const { return opts.max_bytes / 10 * 9; }

  // ---- paths ----
  std::string xorb_dir(const Key32& k) const {
    std::string hex = hex_encode(k.data(), k.size());
    std::string p;
    p.reserve(v1.size() + 4 + hex.size());
    p.append(v1).append("/").append(hex, 0, 2).append("/").append(hex);
    return p;
  }
  static std::string run_name(uint32_t first, uint64_t end) {
    return fmt::format("{}-{}.run", first, end);
  }

  Shard& shard_of(const Key32& k) { return shards[Key32Hash{}(k) % kShards]; }

  RunPtr make_run(const std::string& dir, uint32_t first, uint64_t end) {
    auto r = std::make_shared<Run>();
    r->id = next_run_id.fetch_add(1, std::memory_order_relaxed);
    r->first = first;
    r->end = end;
    r->path = dir + "/" + run_name(first, end);
    r->added_ns = mono_ns();
    return r;
  }

  // Keeps the per-shard map bounded: listings are cheap to redo, so forgetting is always safe.
  // Called with the shard lock held; returns run ids whose fds must be dropped.
  static void trim_shard(Shard& s, const Key32& keep, std::vector<uint64_t>* dropped) {
    if (s.xorbs.size() < kMaxXorbsPerShard) return;
    for (auto it = s.xorbs.begin(); it != s.xorbs.end();) {
      if (it->second.runs.empty() && it->first != keep) it = s.xorbs.erase(it);
      else ++it;
    }
    for (auto it = s.xorbs.begin();
         s.xorbs.size() >= kMaxXorbsPerShard * 3 / 4 && it != s.xorbs.end();) {
      if (it->first == keep) { ++it; continue; }
      for (const RunPtr& r : it->second.runs) dropped->push_back(r->id);
      it = s.xorbs.erase(it);
    }
  }

  // Lists the xorb's directory and merges it into the index (keeping the objects, and thus
  // the parsed tables, of runs that are still there).
  void relist(const Key32& xorb) {
    const int64_t start = mono_ns();
    const std::string dir = xorb_dir(xorb);
    std::vector<std::pair<uint32_t, uint64_t>> ranges;
    if (DirPtr d{::opendir(dir.c_str())}) {
      while (dirent* de = ::readdir(d.get())) {
        uint32_t f;
        uint64_t e;
        if (parse_run_name(de->d_name, &f, &e)) ranges.emplace_back(f, e);
      }
    }
    std::vector<uint64_t> dropped;
    {
      Shard& s = shard_of(xorb);
      std::lock_guard lk(s.mu);
      auto it = s.xorbs.find(xorb);
      if (it == s.xorbs.end()) {
        trim_shard(s, xorb, &dropped);
        it = s.xorbs.emplace(xorb, XorbRuns{}).first;
      }
      XorbRuns& xr = it->second;
      std::map<std::pair<uint32_t, uint64_t>, RunPtr> old;
      for (RunPtr& r : xr.runs) old.emplace(std::pair{r->first, r->end}, std::move(r));
      std::vector<RunPtr> next;
      next.reserve(ranges.size());
      for (auto range : ranges) {
        auto o = old.find(range);
        if (o != old.end()) {
          next.push_back(std::move(o->second));
          old.erase(o);
        } else {
          next.push_back(make_run(dir, range.first, range.second));
        }
      }
      for (auto& [range, r] : old) {
        // Written by this process while we were listing: keep; otherwise it vanished.
        if (r->added_ns >= start) next.push_back(std::move(r));
        else dropped.push_back(r->id);
      }
      xr.assign(std::move(next));
      xr.listed_ns = mono_ns();
    }
    for (uint64_t id : dropped) fds.erase(id);
  }

  RunPtr locate(const Key32& xorb, uint32_t index) {
    Shard& s = shard_of(xorb);
    {
      std::lock_guard lk(s.mu);
      auto it = s.xorbs.find(xorb);
      if (it != s.xorbs.end()) {
        if (RunPtr r = it->second.find(index)) return r;
        int64_t listed = it->second.listed_ns;
        if (listed != kNever && mono_ns() - listed < kRelistNs) return nullptr;
      }
    }
    relist(xorb);
    std::lock_guard lk(s.mu);
    auto it = s.xorbs.find(xorb);
    return it == s.xorbs.end() ? nullptr : it->second.find(index);
  }

  // Removes a run from the index (if still there) and closes its cached fd. With `relist`, the
  // next miss on this xorb lists the directory again regardless of the rate limit.
  void forget(const Key32& xorb, uint64_t run_id, bool force_relist) {
    {
      Shard& s = shard_of(xorb);
      std::lock_guard lk(s.mu);
      auto it = s.xorbs.find(xorb);
      if (it != s.xorbs.end()) {
        auto& runs = it->second.runs;
        std::erase_if(runs, [&](const RunPtr& r) { return r->id == run_id; });
        if (force_relist) it->second.listed_ns = kNever;
      }
    }
    fds.erase(run_id);
  }
  void forget_range(const Key32& xorb, uint32_t first, uint64_t end) {
    std::vector<uint64_t> ids;
    {
      Shard& s = shard_of(xorb);
      std::lock_guard lk(s.mu);
      auto it = s.xorbs.find(xorb);
      if (it == s.xorbs.end()) return;
      std::erase_if(it->second.runs, [&](const RunPtr& r) {
        if (r->first != first || r->end != end) return false;
        ids.push_back(r->id);
        return true;
      });
    }
    for (uint64_t id : ids) fds.erase(id);
  }

  void drop_corrupt(const Key32& xorb, const Run& run, const OpenFile* f, std::string_view why) {
    forget(xorb, run.id, /*force_relist=*/true);
    // Unlink the name only if it still is the file found corrupt: another process may have
    // evicted it and written a fresh run under the same name since.
    struct stat st {};
    if (::stat(run.path.c_str(), &st) == 0 &&
        (f == nullptr || (st.st_ino == f->ino && st.st_dev == f->dev))) {
      ::unlink(run.path.c_str());  // its reservation is left to the next reconcile
    }
    corrupt_dropped.fetch_add(1, std::memory_order_relaxed);
    // Warn for the first few; a failing disk must not flood the log.
    if (corrupt_logged.fetch_add(1, std::memory_order_relaxed) < 16)
      HF_LOG_WARN(kComponent, "dropped corrupt cache run {}: {}", run.path, why);
    else
      HF_LOG_DEBUG(kComponent, "dropped corrupt cache run {}: {}", run.path, why);
  }

  std::pair<Outcome, std::shared_ptr<OpenFile>> acquire_fd(Run& run) {
    if (auto f = fds.find(run.id)) {
      int64_t now = mono_ns();
      int64_t checked = f->nlink_checked_ns.load(std::memory_order_relaxed);
      if (now - checked < kNlinkCheckNs) return {Outcome::ok, f};
      f->nlink_checked_ns.store(now, std::memory_order_relaxed);
      struct stat st {};
      if (::fstat(f->fd, &st) != 0) return {Outcome::transient, nullptr};
      if (st.st_nlink == 0) return {Outcome::gone, nullptr};  // unlinked by another process
      return {Outcome::ok, f};
    }
    int fd = ::open(run.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      if (errno == ENOENT) return {Outcome::gone, nullptr};
      return {errno == ELOOP ? Outcome::corrupt : Outcome::transient, nullptr};  // ELOOP: a symlink
    }
    auto f = std::make_shared<OpenFile>();
    f->fd = fd;
    struct stat st {};
    if (::fstat(fd, &st) != 0) return {Outcome::transient, nullptr};
    if (!S_ISREG(st.st_mode)) return {Outcome::corrupt, nullptr};
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->nlink_checked_ns.store(mono_ns(), std::memory_order_relaxed);
    fds.insert(run.id, f);
    return {Outcome::ok, f};
  }

  static bool pread_full(int fd, uint8_t* p, size_t n, uint64_t off) {
    while (n > 0) {
      ssize_t r = ::pread(fd, p, n, static_cast<off_t>(off));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      p += r;
      n -= static_cast<size_t>(r);
      off += static_cast<uint64_t>(r);
    }
    return true;
  }

  // Parses and verifies the header and entry table. `why` is set on corruption.
  Outcome load_table(const Key32& xorb, Run& run, const OpenFile& f, std::string* why) {
    if (run.table.load(std::memory_order_acquire)) return Outcome::ok;
    std::lock_guard lk(run.load_mu);
    if (run.table.load(std::memory_order_acquire)) return Outcome::ok;

    struct stat st {};
    if (::fstat(f.fd, &st) != 0) return Outcome::transient;
    const uint64_t file_size = static_cast<uint64_t>(st.st_size);
    uint8_t hdr[kHeaderSize];
    if (file_size < kHeaderSize || !pread_full(f.fd, hdr, kHeaderSize, 0)) {
      *why = "truncated header";
      return Outcome::corrupt;
    }
    if (std::memcmp(hdr, kMagic, sizeof kMagic) != 0) { *why = "bad magic"; return Outcome::corrupt; }
    if (hdr[7] != kFormatVersion) { *why = "unknown format version"; return Outcome::corrupt; }
    if (XXH3_64bits(hdr, 56) != get_le64(hdr + 56)) {
      *why = "header checksum mismatch";
      return Outcome::corrupt;
    }
    if (std::memcmp(hdr + 8, xorb.data(), 32) != 0) { *why = "xorb key mismatch"; return Outcome::corrupt; }
    const uint32_t first = get_le32(hdr + 40);
    const uint32_t count = get_le32(hdr + 44);
    if (first != run.first || count == 0 || uint64_t{first} + count != run.end) {
      *why = "range does not match the file name";
      return Outcome::corrupt;
    }
    if (get_le64(hdr + 48) != file_size) { *why = "file size mismatch (truncated?)"; return Outcome::corrupt; }
    if (file_size > kMaxRunBytes) { *why = "file too large"; return Outcome::corrupt; }

    const size_t table_bytes = size_t{count} * kEntrySize;
    const uint64_t data_start = kHeaderSize + table_bytes + kTableSumSize;
    if (data_start > file_size) { *why = "truncated table"; return Outcome::corrupt; }
    std::vector<uint8_t> tbl(table_bytes + kTableSumSize);
    if (!pread_full(f.fd, tbl.data(), tbl.size(), kHeaderSize)) {
      *why = "truncated table";
      return Outcome::corrupt;
    }
    if (XXH3_64bits(tbl.data(), table_bytes) != get_le64(tbl.data() + table_bytes)) {
      *why = "table checksum mismatch";
      return Outcome::corrupt;
    }
    auto t = std::make_unique<RunTable>();
    t->file_size = file_size;
    t->entries.resize(count);
    uint64_t expect_off = data_start;
    for (uint32_t i = 0; i < count; ++i) {
      const uint8_t* e = tbl.data() + size_t{i} * kEntrySize;
      RunEntry& re = t->entries[i];
      re.len = get_le32(e);
      re.off = get_le64(e + 8);
      re.xxh = get_le64(e + 16);
      if (re.len > kMaxChunkBytes || re.off != expect_off || get_le32(e + 4) != 0) {
        *why = "bad table entry";
        return Outcome::corrupt;
      }
      expect_off += re.len;
    }
    if (expect_off != file_size) { *why = "data size mismatch"; return Outcome::corrupt; }
    run.table_owner = std::move(t);
    run.table.store(run.table_owner.get(), std::memory_order_release);
    return Outcome::ok;
  }

  // Reads chunks [from, from + n) of `run` (which covers them) and appends them to `out`,
  // verified. On failure, chunks verified before the failing one are still appended.
  Outcome read_span(const Key32& xorb, const RunPtr& run, uint32_t from, uint32_t n,
                    std::vector<ChunkBytes>& out) {
    auto [oc, f] = acquire_fd(*run);
    if (oc == Outcome::gone) {
      forget(xorb, run->id, /*force_relist=*/true);
      return oc;
    }
    if (oc == Outcome::corrupt) {
      drop_corrupt(xorb, *run, nullptr, "not a regular file");
      return oc;
    }
    if (oc != Outcome::ok) return oc;
    std::string why;
    oc = load_table(xorb, *run, *f, &why);
    if (oc == Outcome::corrupt) drop_corrupt(xorb, *run, f.get(), why);
    if (oc != Outcome::ok) return oc;
    const RunTable& t = *run->table.load(std::memory_order_acquire);
    const RunEntry* ents = t.entries.data() + (from - run->first);

    // preadv straight into the final buffers (no bounce copy), in batches of at most
    // kIoBatchBytes so each batch is still in the CPU cache when it is verified.
    std::vector<std::shared_ptr<std::vector<uint8_t>>> bufs(n);
    std::array<iovec, IOV_MAX> iov;
    for (uint32_t b = 0, m = 0; b < n; b += m) {
      size_t total = 0;
      for (m = 0; b + m < n && m < IOV_MAX && (m == 0 || total < kIoBatchBytes); ++m) {
        const uint32_t i = b + m;
        bufs[i] = std::make_shared<std::vector<uint8_t>>(ents[i].len);
        iov[m] = {bufs[i]->data(), ents[i].len};
        total += ents[i].len;
      }
      if (int err = preadv_full(f->fd, iov.data(), static_cast<int>(m), ents[b].off, total)) {
        // The size was verified at load time: a short read means the file changed under us,
        // EIO a failing medium. Anything else (ENOMEM, ...) is not the file's fault.
        if (err != EIO && err != ENODATA) return Outcome::transient;
        drop_corrupt(xorb, *run, f.get(), err == EIO ? "read error (EIO)" : "short read");
        for (uint32_t i = 0; i < b; ++i) out.push_back(std::move(bufs[i]));
        return Outcome::corrupt;
      }
      for (uint32_t i = 0; i < m; ++i) {
        const auto& v = *bufs[b + i];
        if (XXH3_64bits(v.data(), v.size()) != ents[b + i].xxh) {
          drop_corrupt(xorb, *run, f.get(), fmt::format("chunk {} checksum mismatch", from + b + i));
          for (uint32_t j = 0; j < b + i; ++j) out.push_back(std::move(bufs[j]));
          return Outcome::corrupt;
        }
      }
    }
    for (auto& b : bufs) out.push_back(std::move(b));
    touch(*run, *f);
    return Outcome::ok;
  }

  // Reads exactly `total` bytes. Returns 0, an errno, or ENODATA for a short read.
  static int preadv_full(int fd, iovec* iov, int cnt, uint64_t off, size_t total) {
    while (total > 0) {
      ssize_t r = ::preadv(fd, iov, cnt, static_cast<off_t>(off));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return errno;
      if (r == 0) return ENODATA;
      size_t got = static_cast<size_t>(r);
      total -= got;
      off += got;
      while (cnt > 0 && got >= iov->iov_len) {
        got -= iov->iov_len;
        ++iov;
        --cnt;
      }
      if (cnt > 0) {
        iov->iov_base = static_cast<uint8_t*>(iov->iov_base) + got;
        iov->iov_len -= got;
      }
    }
    return 0;
  }

  // Writes exactly `total` bytes (retrying short writes). Returns 0 or an errno.
  static int pwritev_full(int fd, iovec* iov, int cnt, uint64_t off, size_t total) {
    while (total > 0) {
      ssize_t w = ::pwritev(fd, iov, cnt, static_cast<off_t>(off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return errno;
      if (w == 0) return EIO;
      size_t got = static_cast<size_t>(w);
      total -= got;
      off += got;
      while (cnt > 0 && got >= iov->iov_len) {
        got -= iov->iov_len;
        ++iov;
        --cnt;
      }
      if (cnt > 0) {
        iov->iov_base = static_cast<uint8_t*>(iov->iov_base) + got;
        iov->iov_len -= got;
      }
    }
    return 0;
  }

  // Bumps mtime (the eviction clock) at most once per kTouchNs per run.
  void touch(Run& run, const OpenFile& f) {
    int64_t now = mono_ns();
    int64_t last = run.touched_ns.load(std::memory_order_relaxed);
    if (last != kNever && now - last < kTouchNs) return;
    if (!run.touched_ns.compare_exchange_strong(last, now, std::memory_order_relaxed)) return;
    ::futimens(f.fd, nullptr);
  }

  void add_written_run(const Key32& xorb, uint32_t first, uint64_t end, const std::string& dir,
                       std::unique_ptr<RunTable> table) {
    RunPtr r = make_run(dir, first, end);
    if (table) {
      r->table_owner = std::move(table);
      r->table.store(r->table_owner.get(), std::memory_order_release);
    }
    r->touched_ns.store(r->added_ns, std::memory_order_relaxed);
    std::vector<uint64_t> dropped;
    {
      Shard& s = shard_of(xorb);
      std::lock_guard lk(s.mu);
      auto it = s.xorbs.find(xorb);
      if (it == s.xorbs.end()) {
        trim_shard(s, xorb, &dropped);
        it = s.xorbs.emplace(xorb, XorbRuns{}).first;
      }
      if (!it->second.has_exact(first, end)) it->second.insert(std::move(r));
    }
    for (uint64_t id : dropped) fds.erase(id);
  }

  bool covered(const Key32& xorb, uint32_t first, uint64_t end) {
    Shard& s = shard_of(xorb);
    std::lock_guard lk(s.mu);
    auto it = s.xorbs.find(xorb);
    if (it == s.xorbs.end()) return false;
    return it->second.covers_range(first, end);
  }

  // ---- scanning and eviction ----

  // Walks tmp/ (in-flight writes: their size is reserved) and then v1/, so a run renamed from
  // tmp to v1 during the walk is not missed; a file seen in both places (same inode) is counted
  // once. Returns the total charge; fills `out` with the runs (v1 only). Empty xorb directories
  // are removed on the way.
  uint64_t scan(std::vector<Candidate>* out) {
    uint64_t total = 0;
    std::vector<ino_t> tmp_inodes;
    if (DirPtr td{::opendir(tmp.c_str())}) {
      while (dirent* de = ::readdir(td.get())) {
        if (de->d_name[0] == '.') continue;
        std::string sub = tmp + "/" + de->d_name;
        DirPtr sd{::opendir(sub.c_str())};
        if (!sd) continue;
        while (dirent* fe = ::readdir(sd.get())) {
          struct stat st {};
          if (fe->d_name[0] == '.') continue;
          if (::fstatat(::dirfd(sd.get()), fe->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
              S_ISREG(st.st_mode)) {
            total += round_block(static_cast<uint64_t>(st.st_size));
            tmp_inodes.push_back(st.st_ino);
          }
        }
      }
    }
    std::sort(tmp_inodes.begin(), tmp_inodes.end());
    DirPtr top{::opendir(v1.c_str())};
    if (!top) return total;
    while (dirent* xe = ::readdir(top.get())) {
      if (xe->d_name[0] == '.') continue;
      std::string xx = v1 + "/" + xe->d_name;
      DirPtr xd{::opendir(xx.c_str())};
      if (!xd) continue;
      while (dirent* ke = ::readdir(xd.get())) {
        if (ke->d_name[0] == '.') continue;
        std::string kdir = xx + "/" + ke->d_name;
        DirPtr kd{::opendir(kdir.c_str())};
        if (!kd) continue;
        Key32 key{};
        bool key_ok = false;
        if (auto raw = hex_decode(ke->d_name); raw && raw->size() == 32 &&
                                               std::string_view(ke->d_name).substr(0, 2) ==
                                                   std::string_view(xe->d_name)) {
          std::copy(raw->begin(), raw->end(), key.begin());
          key_ok = true;
        }
        size_t files = 0;
        while (dirent* fe = ::readdir(kd.get())) {
          if (std::strcmp(fe->d_name, ".") == 0 || std::strcmp(fe->d_name, "..") == 0) continue;
          ++files;
          struct stat st {};
          if (::fstatat(::dirfd(kd.get()), fe->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
          if (!S_ISREG(st.st_mode)) continue;
          const uint64_t charge = round_block(static_cast<uint64_t>(st.st_size));
          if (!std::binary_search(tmp_inodes.begin(), tmp_inodes.end(), st.st_ino)) total += charge;
          if (!out) continue;
          Candidate c;
          c.path = kdir + "/" + fe->d_name;
          c.mtime = mtime_ns(st);
          c.charge = charge;
          c.ino = st.st_ino;
          if (key_ok && parse_run_name(fe->d_name, &c.first, &c.end)) {
            c.named = true;
            c.xorb = key;
          }
          out->push_back(std::move(c));
        }
        if (files == 0) ::rmdir(kdir.c_str());  // a racing writer re-creates it and retries
      }
    }
    return total;
  }

  // One eviction pass. `blocking`: wait for the in-process and cross-process locks.
  void evict_pass(bool blocking) {
    std::unique_lock elk(evict_mu, std::defer_lock);
    if (blocking) elk.lock();
    else if (!elk.try_lock()) return;
    int rc;
    do rc = ::flock(evict_fd, LOCK_EX | (blocking ? 0 : LOCK_NB));
    while (rc != 0 && errno == EINTR);
    if (rc != 0) return;  // another process is evicting: its unlinks lower the shared counter

    // Reconcile the shared counter with the scan, downwards only. Reservations made while the
    // scan runs stay in the counter (counter = c0 + delta; corrected = scan + delta). The scan
    // can only overcount (a file created before a reservation made after c0 is in both), so
    // lowering is always safe: it releases reservations leaked by crashed writers and runs
    // deleted behind our back. Raising it could push the counter over the bound.
    const int64_t c0 = static_cast<int64_t>(state_u64(kStateUsedOff).load());
    std::vector<Candidate> cands;
    const int64_t scanned = static_cast<int64_t>(scan(&cands));
    if (scanned < c0) release_locked(static_cast<uint64_t>(c0 - scanned));
    else if (c0 < 0) state_u64(kStateUsedOff).fetch_add(static_cast<uint64_t>(scanned - c0));  // damaged
    state_u64(kStateReconcileOff).store(static_cast<uint64_t>(now_unix_ns()));

    const uint64_t low = low_watermark();
    if (used() > low) {
      std::sort(cands.begin(), cands.end(),
                [](const Candidate& a, const Candidate& b) { return a.mtime < b.mtime; });
      for (const Candidate& c : cands) {
        if (used() <= low) break;
        // Skip a run read since the scan (its mtime moved) or replaced (new inode).
        struct stat st {};
        if (::lstat(c.path.c_str(), &st) != 0 || st.st_ino != c.ino || mtime_ns(st) != c.mtime)
          continue;
        if (::unlink(c.path.c_str()) != 0) continue;
        release_locked(c.charge);
        runs_evicted.fetch_add(1, std::memory_order_relaxed);
        bytes_evicted.fetch_add(static_cast<uint64_t>(st.st_size), std::memory_order_relaxed);
        if (c.named) forget_range(c.xorb, c.first, c.end);
        // Remove the xorb dir once empty (fails harmlessly with ENOTEMPTY).
        ::rmdir(c.path.substr(0, c.path.rfind('/')).c_str());
      }
    }
    ::flock(evict_fd, LOCK_UN);
  }

  // ---- open-time setup ----

  Status init_shared_state() {
    std::string path = root + "/state";
    state_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (state_fd < 0) return errno_error("open", path, errno);
    struct stat st {};
    if (::fstat(state_fd, &st) != 0) return errno_error("stat", path, errno);
    // Only ever grow the file: shrinking a file another process has mapped would SIGBUS it.
    if (static_cast<size_t>(st.st_size) < kStateSize && ::ftruncate(state_fd, kStateSize) != 0)
      return errno_error("truncate", path, errno);
    void* m = ::mmap(nullptr, kStateSize, PROT_READ | PROT_WRITE, MAP_SHARED, state_fd, 0);
    if (m == MAP_FAILED) return errno_error("mmap", path, errno);
    state = static_cast<uint8_t*>(m);
    const std::string boot = boot_id();
    auto valid = [&] {
      return state_u64(kStateMagicOff).load(std::memory_order_acquire) == kStateMagic &&
             std::memcmp(state + kStateBootOff, boot.data(), boot.size()) == 0;
    };
    if (valid()) return {};

    // First use of this directory, lost state, or first open since a reboot (a power loss can
    // leave the counter older than the files): count what is on disk, under the evict lock so
    // concurrent openers do it once.
    int rc;
    do rc = ::flock(evict_fd, LOCK_EX);
    while (rc != 0 && errno == EINTR);
    if (!valid()) {
      state_u64(kStateMagicOff).store(0, std::memory_order_release);
      state_u64(kStateUsedOff).store(scan(nullptr));
      state_u64(kStateReconcileOff).store(static_cast<uint64_t>(now_unix_ns()));
      std::memcpy(state + kStateBootOff, boot.data(), boot.size());
      state_u64(kStateMagicOff).store(kStateMagic, std::memory_order_release);
    }
    ::flock(evict_fd, LOCK_UN);
    return {};
  }

  // The kernel's per-boot random id (36 characters), or a fixed string if unavailable.
  static std::string boot_id() {
    std::string id(kBootIdLen, '-');
    int fd = ::open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t n = ::read(fd, id.data(), id.size());
      ::close(fd);
      if (n != static_cast<ssize_t>(id.size())) id.assign(kBootIdLen, '-');
    }
    return id;
  }

  static std::string random_hex() {
    uint64_t v = 0;
    if (::getrandom(&v, sizeof v, 0) != sizeof v)
      v = static_cast<uint64_t>(now_unix_ns()) ^ (static_cast<uint64_t>(::getpid()) << 32);
    return fmt::format("{:016x}", v);
  }

  // Removes tmp data whose owner is dead: its <id>.lock is no longer flock()ed.
  void clean_stale_tmp() {
    DirPtr d{::opendir(tmp.c_str())};
    if (!d) return;
    std::vector<std::string> names;
    while (dirent* de = ::readdir(d.get()))
      if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0)
        names.emplace_back(de->d_name);
    d.reset();
    const int64_t now = now_unix_ns();
    for (const std::string& n : names) {
      std::string p = tmp + "/" + n;
      if (n.ends_with(".lock")) {
        int fd = ::open(p.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) continue;
        if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
          remove_flat_dir(tmp + "/" + n.substr(0, n.size() - 5));
          ::unlink(p.c_str());
        }
        ::close(fd);
        continue;
      }
      struct stat st {};
      if (::lstat(p.c_str(), &st) != 0) continue;
      const bool old = now - mtime_ns(st) > kStaleTmpNs;
      if (S_ISDIR(st.st_mode)) {
        struct stat lst {};
        if (old && ::lstat((p + ".lock").c_str(), &lst) != 0) remove_flat_dir(p);
      } else if (old) {
        ::unlink(p.c_str());
      }
    }
  }

  Status create_own_tmp() {
    for (int attempt = 0; attempt < 8; ++attempt) {
      std::string id = random_hex();
      std::string lock = tmp + "/" + id + ".lock";
      int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
      if (fd < 0) {
        if (errno == EEXIST) continue;
        return errno_error("create", lock, errno);
      }
      // A concurrent clean_stale_tmp() may have taken and removed our fresh lock file between
      // create and flock: verify that the name still refers to the file we locked.
      struct stat a {}, b {};
      if (::flock(fd, LOCK_EX | LOCK_NB) != 0 || ::fstat(fd, &a) != 0 ||
          ::stat(lock.c_str(), &b) != 0 || a.st_ino != b.st_ino) {
        ::close(fd);
        continue;
      }
      std::string dir = tmp + "/" + id;
      if (::mkdir(dir.c_str(), 0700) != 0) {
        int err = errno;
        ::unlink(lock.c_str());
        ::close(fd);
        if (err == EEXIST) continue;
        return errno_error("mkdir", dir, err);
      }
      own_lock_fd = fd;
      own_lock_path = lock;
      own_tmp = dir;
      return {};
    }
    return make_error(Errc::io, "could not create a private tmp directory under " + tmp);
  }

  // ---- writing ----

  Status write_run(const Key32& xorb, uint32_t first, std::span<const ChunkBytes> chunks,
                   bool* skipped) {
    const uint32_t count = static_cast<uint32_t>(chunks.size());
    const uint64_t end = uint64_t{first} + count;
    const size_t table_bytes = size_t{count} * kEntrySize;
    const uint64_t data_start = kHeaderSize + table_bytes + kTableSumSize;
    uint64_t file_size = data_start;
    for (const ChunkBytes& c : chunks) file_size += c->size();

    // Layout first; the checksums are filled in while writing.
    std::vector<uint8_t> meta(data_start, 0);
    auto table = std::make_unique<RunTable>();
    table->file_size = file_size;
    table->entries.resize(count);
    uint64_t off = data_start;
    for (uint32_t i = 0; i < count; ++i) {
      table->entries[i].len = static_cast<uint32_t>(chunks[i]->size());
      table->entries[i].off = off;
      off += chunks[i]->size();
    }

    const std::string tmp_path =
        fmt::format("{}/{}", own_tmp, next_tmp.fetch_add(1, std::memory_order_relaxed));
    int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return errno_error("create", tmp_path, errno);
    // The full size is visible (sparse) before the reservation, so a concurrent reconcile scan
    // that sees the reservation also sees the file.
    const uint64_t charge = round_block(file_size);
    if (::ftruncate(fd, static_cast<off_t>(file_size)) != 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp_path.c_str());
      return errno_error("truncate", tmp_path, err);
    }
    if (!try_reserve(charge)) {
      ::close(fd);
      ::unlink(tmp_path.c_str());
      *skipped = true;
      return {};
    }
    auto fail = [&](std::string_view what, const std::string& path, int err) -> Status {
      ::close(fd);
      ::unlink(tmp_path.c_str());  // the reservation leaks until the next reconcile
      return errno_error(what, path, err);
    };

    // The data goes straight from the callers' buffers, in groups of at most kIoBatchBytes:
    // each group is checksummed and then written while it is still in the CPU cache. Header
    // and table are written last (the file is invisible until the rename anyway).
    std::array<iovec, IOV_MAX> iov;
    for (uint32_t b = 0, m = 0; b < count; b += m) {
      size_t total = 0;
      int k = 0;
      for (m = 0; b + m < count && m < IOV_MAX && (m == 0 || total < kIoBatchBytes); ++m) {
        const std::vector<uint8_t>& v = *chunks[b + m];
        RunEntry& re = table->entries[b + m];
        re.xxh = XXH3_64bits(v.data(), v.size());
        uint8_t* e = meta.data() + kHeaderSize + size_t{b + m} * kEntrySize;
        put_le32(e, re.len);
        put_le64(e + 8, re.off);
        put_le64(e + 16, re.xxh);
        if (!v.empty()) iov[k++] = {const_cast<uint8_t*>(v.data()), v.size()};
        total += v.size();
      }
      if (int err = pwritev_full(fd, iov.data(), k, table->entries[b].off, total))
        return fail("write", tmp_path, err);
    }
    put_le64(meta.data() + kHeaderSize + table_bytes,
             XXH3_64bits(meta.data() + kHeaderSize, table_bytes));
    std::memcpy(meta.data(), kMagic, sizeof kMagic);
    meta[7] = kFormatVersion;
    std::memcpy(meta.data() + 8, xorb.data(), 32);
    put_le32(meta.data() + 40, first);
    put_le32(meta.data() + 44, count);
    put_le64(meta.data() + 48, file_size);
    put_le64(meta.data() + 56, XXH3_64bits(meta.data(), 56));
    iov[0] = {meta.data(), meta.size()};
    if (int err = pwritev_full(fd, iov.data(), 1, 0, meta.size())) return fail("write", tmp_path, err);
    if (opts.fsync && ::fdatasync(fd) != 0) return fail("fdatasync", tmp_path, errno);
    if (::close(fd) != 0) {
      int err = errno;
      fd = -1;
      ::unlink(tmp_path.c_str());
      return errno_error("close", tmp_path, err);
    }

    const std::string dir = xorb_dir(xorb);
    const std::string dest = dir + "/" + run_name(first, end);
    int rc = -1, err = 0;
    for (int attempt = 0; attempt < 4; ++attempt) {
      // The evictor removes empty xorb dirs: (re)create and retry on ENOENT.
      Status st = mkdir_0700(dir.substr(0, v1.size() + 3));
      if (st.ok()) st = mkdir_0700(dir);
      if (!st.ok()) {
        ::unlink(tmp_path.c_str());
        return st;
      }
      rc = ::renameat2(AT_FDCWD, tmp_path.c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE);
      err = rc == 0 ? 0 : errno;
      if (rc != 0 && err == EINVAL) {
        // File system without RENAME_NOREPLACE: link() has the same no-replace semantics.
        rc = ::link(tmp_path.c_str(), dest.c_str());
        err = rc == 0 ? 0 : errno;
        if (rc == 0) ::unlink(tmp_path.c_str());
      }
      if (rc == 0 || err != ENOENT) break;
    }
    if (rc != 0) {
      ::unlink(tmp_path.c_str());
      if (err == EEXIST) {
        // Another process stored the same range first; index its file instead.
        add_written_run(xorb, first, end, dir, nullptr);
        return {};
      }
      return errno_error("rename", dest, err);
    }
    if (opts.fsync) {
      int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
      }
    }
    add_written_run(xorb, first, end, dir, std::move(table));
    runs_written.fetch_add(1, std::memory_order_relaxed);
    bytes_written.fetch_add(file_size, std::memory_order_relaxed);
    return {};
  }
};

DiskChunkStore::DiskChunkStore(DiskChunkStoreOptions opts) : opts_(std::move(opts)) {}

Result<std::unique_ptr<DiskChunkStore>> DiskChunkStore::open(DiskChunkStoreOptions opts) {
  std::unique_ptr<DiskChunkStore> s(new DiskChunkStore(opts));
  if (opts.max_bytes == 0) return s;  // disabled: touch nothing on disk
  if (opts.dir.empty()) return make_error(Errc::invalid_argument, "cache directory is empty");
  if (opts.evict_interval.count() <= 0) opts.evict_interval = std::chrono::seconds(1);
  s->opts_ = opts;
  auto impl = std::make_unique<Impl>();
  impl->opts = opts;
  std::string dir = opts.dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  impl->root = dir + "/chunks";
  impl->v1 = impl->root + "/v1";
  impl->tmp = impl->root + "/tmp";
  HF_TRY(mkdir_0700(dir));
  HF_TRY(mkdir_0700(impl->root));
  HF_TRY(mkdir_0700(impl->v1));
  HF_TRY(mkdir_0700(impl->tmp));
  std::string lock = impl->root + "/evict.lock";
  impl->evict_fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (impl->evict_fd < 0) return errno_error("open", lock, errno);
  HF_TRY(impl->init_shared_state());
  impl->clean_stale_tmp();
  HF_TRY(impl->create_own_tmp());
  s->impl_ = std::move(impl);
  s->evictor_ = std::thread([p = s.get()] { p->evictor_loop(); });
  return s;
}

DiskChunkStore::~DiskChunkStore() {
  {
    std::lock_guard lk(wake_mu_);
    stop_ = true;
  }
  wake_cv_.notify_all();
  if (evictor_.joinable()) evictor_.join();
}

void DiskChunkStore::evictor_loop() {
  std::unique_lock lk(wake_mu_);
  for (;;) {
    wake_cv_.wait_for(lk, opts_.evict_interval, [&] { return stop_ || wake_; });
    if (stop_) return;
    const bool woken = wake_;
    wake_ = false;
    lk.unlock();
    const uint64_t used = impl_->used();
    const int64_t last = static_cast<int64_t>(impl_->state_u64(kStateReconcileOff).load());
    if (used > impl_->high_watermark() || (woken && used > impl_->low_watermark()) ||
        now_unix_ns() - last > kReconcileNs)
      impl_->evict_pass(/*blocking=*/false);
    lk.lock();
  }
}

Status DiskChunkStore::put_run(const Key32& xorb, uint32_t first_index,
                               std::span<const ChunkBytes> chunks) {
  if (chunks.empty()) return make_error(Errc::invalid_argument, "put_run: no chunks");
  if (chunks.size() > kMaxRunChunks)
    return make_error(Errc::invalid_argument, "put_run: too many chunks in one run");
  if (uint64_t{first_index} + chunks.size() > (1ull << 32))
    return make_error(Errc::invalid_argument, "put_run: chunk index overflow");
  uint64_t total = 0;
  for (const ChunkBytes& c : chunks) {
    if (!c) return make_error(Errc::invalid_argument, "put_run: null chunk");
    if (c->size() > kMaxChunkBytes) return make_error(Errc::invalid_argument, "put_run: chunk too large");
    total += c->size();
  }
  if (total + kHeaderSize + chunks.size() * kEntrySize + kTableSumSize > kMaxRunBytes)
    return make_error(Errc::invalid_argument, "put_run: run too large");
  if (!impl_) return {};
  const uint64_t end = uint64_t{first_index} + chunks.size();
  if (impl_->covered(xorb, first_index, end)) return {};
  bool skipped = false;
  Status st = impl_->write_run(xorb, first_index, chunks, &skipped);
  if (skipped) impl_->puts_skipped_full.fetch_add(1, std::memory_order_relaxed);
  if (skipped || impl_->used() > impl_->high_watermark()) {
    {
      std::lock_guard lk(wake_mu_);
      wake_ = true;
    }
    wake_cv_.notify_one();
  }
  return st;
}

Result<ChunkBytes> DiskChunkStore::get(const Key32& xorb, uint32_t index) {
  if (!impl_) return ChunkBytes{};
  std::vector<ChunkBytes> out;
  // A few attempts: a run can vanish (evicted) or be corrupt while another one covers the index.
  for (int attempt = 0; attempt < 4; ++attempt) {
    RunPtr run = impl_->locate(xorb, index);
    if (!run) break;
    Outcome oc = impl_->read_span(xorb, run, index, 1, out);
    if (oc == Outcome::ok) {
      impl_->hits.fetch_add(1, std::memory_order_relaxed);
      return std::move(out[0]);
    }
    if (oc == Outcome::transient) break;
    out.clear();
  }
  impl_->misses.fetch_add(1, std::memory_order_relaxed);
  return ChunkBytes{};
}

Status DiskChunkStore::get_range(const Key32& xorb, uint32_t first, uint32_t end,
                                 std::vector<ChunkBytes>& out) {
  out.clear();
  if (first > end) return make_error(Errc::invalid_argument, "get_range: first > end");
  if (first == end) return {};
  if (!impl_) return {};
  out.reserve(std::min<uint32_t>(end - first, 8192));
  uint32_t idx = first;
  int failures = 0;
  while (idx < end && failures < 4) {
    RunPtr run = impl_->locate(xorb, idx);
    if (!run) break;
    const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(end, run->end) - idx);
    const size_t before = out.size();
    Outcome oc = impl_->read_span(xorb, run, idx, n, out);
    idx += static_cast<uint32_t>(out.size() - before);
    if (oc == Outcome::transient) break;
    if (oc != Outcome::ok) ++failures;
  }
  impl_->hits.fetch_add(out.size(), std::memory_order_relaxed);
  if (idx < end) impl_->misses.fetch_add(1, std::memory_order_relaxed);
  return {};
}

bool DiskChunkStore::contains(const Key32& xorb, uint32_t index) {
  return impl_ && impl_->locate(xorb, index) != nullptr;
}

uint64_t DiskChunkStore::used_bytes() const { return impl_ ? impl_->used() : 0; }

DiskChunkStore::Stats DiskChunkStore::stats() const {
  Stats s;
  if (!impl_) return s;
  auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  s.hits = ld(impl_->hits);
  s.misses = ld(impl_->misses);
  s.corrupt_dropped = ld(impl_->corrupt_dropped);
  s.runs_written = ld(impl_->runs_written);
  s.bytes_written = ld(impl_->bytes_written);
  s.puts_skipped_full = ld(impl_->puts_skipped_full);
  s.runs_evicted = ld(impl_->runs_evicted);
  s.bytes_evicted = ld(impl_->bytes_evicted);
  return s;
}

void DiskChunkStore::evict_now() {
  if (impl_) impl_->evict_pass(/*blocking=*/true);
}

}  // namespace hf::cache
