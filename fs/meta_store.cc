#include "fs/meta_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>

#include <cstring>

#include "base/clock.h"
#include "base/log.h"
#include "base/sha256.h"
#include "base/text.h"

namespace hf::fs {

namespace {

constexpr uint8_t kFormat = 1;
constexpr size_t kPageEntries = 4096;
constexpr uint32_t kMarkerPage = 0xFFFFFFFFu;
constexpr size_t kMaxEntriesPerDir = 50'000'000;  // sanity bound when decoding markers

void put_u8(std::string& s, uint8_t v) { s.push_back(static_cast<char>(v)); }
void put_u16(std::string& s, uint16_t v) { s.append(reinterpret_cast<const char*>(&v), 2); }
void put_u32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
void put_u64(std::string& s, uint64_t v) { s.append(reinterpret_cast<const char*>(&v), 8); }
void put_be32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_be64(std::string& s, uint64_t v) {
  for (int i = 7; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Bounds-checked little-endian reader over an untrusted value.
struct Reader {
  std::string_view s;
  size_t pos = 0;
  bool ok = true;
  bool need(size_t n) {
    if (!ok || s.size() - pos < n) ok = false;
    return ok;
  }
  template <class T>
  T get() {
    T v{};
    if (need(sizeof(T))) {
      std::memcpy(&v, s.data() + pos, sizeof(T));
      pos += sizeof(T);
    }
    return v;
  }
  std::string str(size_t n) {
    if (!need(n)) return {};
    std::string r(s.substr(pos, n));
    pos += n;
    return r;
  }
  void bytes(uint8_t* out, size_t n) {
    if (need(n)) {
      std::memcpy(out, s.data() + pos, n);
      pos += n;
    }
  }
};

std::string dir_prefix(const std::string& commit, const std::string& dir) {
  std::string k = commit;
  k.push_back('\0');
  k += dir;
  k.push_back('\0');
  return k;
}

const char* kCfRefs = "refs";
const char* kCfDirs = "dirs";
const char* kCfChunks = "chunkmap";
const char* kCfJournal = "journal";  // "f/<path>" pending files, "o/<id BE>" pending ops

}  // namespace

std::string MetaStore::encode_entries(const ListedEntry* e, size_t n) {
  std::string v;
  put_u8(v, kFormat);
  put_u32(v, static_cast<uint32_t>(n));
  for (size_t i = 0; i < n; ++i) {
    const ListedEntry& x = e[i];
    put_u8(v, static_cast<uint8_t>(x.kind));
    put_u8(v, static_cast<uint8_t>(x.content.source));
    put_u16(v, static_cast<uint16_t>(x.name.size()));
    v += x.name;
    put_u64(v, x.size);
    put_u64(v, static_cast<uint64_t>(x.mtime_ns));
    v.append(reinterpret_cast<const char*>(x.content.id.data()), 32);
    put_u8(v, static_cast<uint8_t>(std::min<size_t>(x.content.etag.size(), 255)));
    v.append(x.content.etag.substr(0, 255));
    put_u16(v, static_cast<uint16_t>(std::min<size_t>(x.symlink_target.size(), 4095)));
    v.append(x.symlink_target.substr(0, 4095));
  }
  return v;
}

Result<std::vector<ListedEntry>> MetaStore::decode_entries(std::string_view v) {
  Reader r{v};
  uint8_t fmt = r.get<uint8_t>();
  uint32_t n = r.get<uint32_t>();
  if (!r.ok || fmt != kFormat) return Error(Errc::corrupt, "listing page: unknown format");
  // Each entry needs at least 55 bytes: a count beyond that is a lie; don't allocate for it.
  if (n > (v.size() - r.pos) / 55 + 1) return Error(Errc::corrupt, "listing page: entry count exceeds the value size");
  std::vector<ListedEntry> out;
  out.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    ListedEntry e;
    uint8_t kind = r.get<uint8_t>();
    uint8_t src = r.get<uint8_t>();
    uint16_t nl = r.get<uint16_t>();
    e.name = r.str(nl);
    e.size = r.get<uint64_t>();
    e.mtime_ns = static_cast<int64_t>(r.get<uint64_t>());
    r.bytes(e.content.id.data(), 32);
    uint8_t el = r.get<uint8_t>();
    e.content.etag = r.str(el);
    uint16_t sl = r.get<uint16_t>();
    e.symlink_target = r.str(sl);
    if (!r.ok) return Error(Errc::corrupt, "listing page: truncated entry");
    if (kind > static_cast<uint8_t>(NodeKind::symlink) || src > static_cast<uint8_t>(Content::Source::local) ||
        !valid_entry_name(e.name)) {
      return Error(Errc::corrupt, "listing page: invalid entry");
    }
    e.kind = static_cast<NodeKind>(kind);
    e.content.source = static_cast<Content::Source>(src);
    out.push_back(std::move(e));
  }
  if (r.pos != v.size()) return Error(Errc::corrupt, "listing page: trailing bytes");
  return out;
}

Result<std::unique_ptr<MetaStore>> MetaStore::open(const std::string& cache_dir, const std::string& scope) {
  // Directory name: readable prefix + a hash of the full scope (endpoint + repo).
  std::string h = sha256_hex(scope).substr(0, 16);
  std::string readable;
  for (char c : scope.substr(scope.rfind('\n') == std::string::npos ? 0 : scope.rfind('\n') + 1)) {
    readable.push_back(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ? c : '_');
  }
  std::string base = cache_dir + "/meta";
  std::string path = base + "/" + readable.substr(0, 64) + "-" + h;
  ::mkdir(base.c_str(), 0700);
  cache::KvOptions o;
  o.column_families = {{kCfRefs}, {kCfDirs}, {kCfChunks}, {kCfJournal}};
  auto kv = cache::KvStore::open(path, o);
  if (kv.ok()) return std::unique_ptr<MetaStore>(new MetaStore(std::move(*kv)));
  if (kv.code() != Errc::busy) return std::move(kv).error();
  // Another mount of the same repository holds the database: follow it read-only.
  std::string sec = base + "/secondary-" + std::to_string(::getpid()) + "-" + h;
  HF_LOG_INFO("meta", "metadata store {} is used by another mount; opening it read-only", path);
  auto s = cache::KvStore::open_secondary(path, sec, o);
  if (!s.ok()) return std::move(s).error();
  return std::unique_ptr<MetaStore>(new MetaStore(std::move(*s)));
}

bool MetaStore::read_only() const { return kv_->is_secondary(); }
uint64_t MetaStore::memory_bytes() const { return kv_->memory_bytes(); }

void MetaStore::catch_up() {
  if (kv_->is_secondary()) (void)kv_->try_catch_up();
}

Status MetaStore::put_ref(const std::string& revision, const RefRecord& r) {
  if (read_only()) return {};
  std::string v;
  put_u8(v, kFormat);
  put_u64(v, static_cast<uint64_t>(r.resolved_at_ns));
  put_u64(v, static_cast<uint64_t>(r.last_modified_ns));
  put_u16(v, static_cast<uint16_t>(r.commit.size()));
  v += r.commit;
  put_u16(v, static_cast<uint16_t>(r.repo_id.size()));
  v += r.repo_id;
  return kv_->put(kCfRefs, revision, v);
}

std::optional<RefRecord> MetaStore::get_ref(const std::string& revision) {
  auto v = kv_->get(kCfRefs, revision);
  if (!v.ok() || !*v) return std::nullopt;
  Reader r{**v};
  RefRecord rec;
  uint8_t fmt = r.get<uint8_t>();
  rec.resolved_at_ns = static_cast<int64_t>(r.get<uint64_t>());
  rec.last_modified_ns = static_cast<int64_t>(r.get<uint64_t>());
  rec.commit = r.str(r.get<uint16_t>());
  rec.repo_id = r.str(r.get<uint16_t>());
  if (!r.ok || fmt != kFormat || rec.commit.empty()) {
    HF_LOG_WARN("meta", "ignoring a malformed cached revision record for '{}'", revision);
    return std::nullopt;
  }
  return rec;
}

Status MetaStore::put_listing(const std::string& commit, const std::string& dir, const std::vector<ListedEntry>& es) {
  if (read_only()) return {};
  std::string prefix = dir_prefix(commit, dir);
  cache::KvStore::WriteBatch b = kv_->batch();
  b.delete_prefix(kCfDirs, prefix);
  uint32_t page = 0;
  for (size_t i = 0; i < es.size(); i += kPageEntries, ++page) {
    std::string k = prefix;
    put_be32(k, page);
    b.put(kCfDirs, k, encode_entries(es.data() + i, std::min(kPageEntries, es.size() - i)));
  }
  std::string mk = prefix;
  put_be32(mk, kMarkerPage);
  std::string mv;
  put_u8(mv, kFormat);
  put_u64(mv, es.size());
  b.put(kCfDirs, mk, mv);  // last in the batch; the batch is atomic anyway
  return b.commit();
}

std::optional<std::vector<ListedEntry>> MetaStore::get_listing(const std::string& commit, const std::string& dir) {
  std::string prefix = dir_prefix(commit, dir);
  std::vector<ListedEntry> out;
  bool complete = false, bad = false;
  uint64_t expected = 0;
  uint32_t next_page = 0;
  Status st = kv_->scan_prefix(kCfDirs, prefix, [&](std::string_view key, std::string_view value) {
    if (key.size() != prefix.size() + 4) {
      return true;  // a longer path sharing this prefix cannot happen (NUL-terminated), skip
    }
    uint32_t page = 0;
    for (size_t i = 0; i < 4; ++i) page = page << 8 | static_cast<uint8_t>(key[prefix.size() + i]);
    if (page == kMarkerPage) {
      Reader r{value};
      uint8_t fmt = r.get<uint8_t>();
      expected = r.get<uint64_t>();
      complete = r.ok && fmt == kFormat && expected <= kMaxEntriesPerDir;
      return false;
    }
    if (page != next_page++) {
      bad = true;
      return false;
    }
    auto es = decode_entries(value);
    if (!es.ok()) {
      bad = true;
      return false;
    }
    for (auto& e : *es) out.push_back(std::move(e));
    return true;
  });
  if (!st.ok() || bad || !complete || out.size() != expected) {
    if (bad) HF_LOG_WARN("meta", "ignoring a corrupt cached listing of '{}' at {}", dir.empty() ? "/" : dir, commit);
    return std::nullopt;
  }
  return out;
}

Status MetaStore::put_chunks(const std::array<uint8_t, 32>& content, const std::vector<ChunkMapEntry>& chunks) {
  if (read_only() || chunks.empty()) return {};
  cache::KvStore::WriteBatch b = kv_->batch();
  for (auto& c : chunks) {
    std::string k(reinterpret_cast<const char*>(content.data()), 32);
    put_be64(k, c.offset);
    std::string v(reinterpret_cast<const char*>(c.xorb.data()), 32);
    put_u32(v, c.index);
    put_u32(v, c.len);
    b.put(kCfChunks, k, v);
  }
  return b.commit();
}

std::vector<ChunkMapEntry> MetaStore::get_chunks(const std::array<uint8_t, 32>& content) {
  std::vector<ChunkMapEntry> out;
  std::string prefix(reinterpret_cast<const char*>(content.data()), 32);
  (void)kv_->scan_prefix(kCfChunks, prefix, [&](std::string_view key, std::string_view value) {
    if (key.size() != 40 || value.size() != 40) return true;  // malformed: skip
    ChunkMapEntry e;
    for (size_t i = 0; i < 8; ++i) e.offset = e.offset << 8 | static_cast<uint8_t>(key[32 + i]);
    std::memcpy(e.xorb.data(), value.data(), 32);
    std::memcpy(&e.index, value.data() + 32, 4);
    std::memcpy(&e.len, value.data() + 36, 4);
    if (e.len == 0 || e.len > 131072) return true;  // never a valid chunk: skip
    out.push_back(e);
    return true;
  });
  return out;
}

}  // namespace hf::fs

namespace hf::fs {

namespace {
std::string encode_pending(const MetaStore::PendingFile& p) {
  std::string v;
  put_u8(v, kFormat);
  put_u16(v, static_cast<uint16_t>(p.staging_path.size()));
  v += p.staging_path;
  put_u8(v, static_cast<uint8_t>(p.base.source));
  v.append(reinterpret_cast<const char*>(p.base.id.data()), 32);
  put_u8(v, static_cast<uint8_t>(std::min<size_t>(p.base.etag.size(), 255)));
  v += p.base.etag.substr(0, 255);
  put_u64(v, p.base_size);
  put_u64(v, p.base_limit);
  put_u64(v, p.size);
  put_u64(v, static_cast<uint64_t>(p.mtime_ns));
  put_u32(v, static_cast<uint32_t>(p.present.size()));
  for (auto& [a, b] : p.present) {
    put_u64(v, a);
    put_u64(v, b);
  }
  return v;
}
}  // namespace

Status MetaStore::put_pending(const PendingFile& p) { return put_pending(std::span<const PendingFile>(&p, 1)); }

Status MetaStore::put_pending(std::span<const PendingFile> files) {
  if (read_only()) return Error(Errc::read_only, "the write journal is held by another mount of this bucket");
  auto b = kv_->batch();
  for (const PendingFile& p : files) b.put(kCfJournal, "f/" + p.path, encode_pending(p));
  return b.commit(true);
}

Status MetaStore::delete_pending(const std::string& path) {
  return delete_pending(std::span<const std::string>(&path, 1));
}

Status MetaStore::delete_pending(std::span<const std::string> paths) {
  if (read_only()) return {};
  auto b = kv_->batch();
  for (const std::string& path : paths) b.del(kCfJournal, "f/" + path);
  return b.commit(true);
}

std::vector<MetaStore::PendingFile> MetaStore::list_pending() {
  std::vector<PendingFile> out;
  (void)kv_->scan_prefix(kCfJournal, "f/", [&](std::string_view key, std::string_view value) {
    Reader r{value};
    PendingFile p;
    p.path = std::string(key.substr(2));
    uint8_t fmt = r.get<uint8_t>();
    p.staging_path = r.str(r.get<uint16_t>());
    uint8_t src = r.get<uint8_t>();
    r.bytes(p.base.id.data(), 32);
    p.base.etag = r.str(r.get<uint8_t>());
    p.base_size = r.get<uint64_t>();
    p.base_limit = r.get<uint64_t>();
    p.size = r.get<uint64_t>();
    p.mtime_ns = static_cast<int64_t>(r.get<uint64_t>());
    uint32_t n = r.get<uint32_t>();
    if (r.ok && n <= (value.size() - r.pos) / 16) {
      for (uint32_t i = 0; i < n; ++i) {
        uint64_t a = r.get<uint64_t>(), b = r.get<uint64_t>();
        p.present.emplace_back(a, b);
      }
    } else {
      r.ok = false;
    }
    if (!r.ok || fmt != kFormat || src > static_cast<uint8_t>(Content::Source::local) || p.staging_path.empty()) {
      HF_LOG_ERROR("journal", "unreadable journal record for '{}'; its staged data is left in place", p.path);
      return true;
    }
    p.base.source = static_cast<Content::Source>(src);
    out.push_back(std::move(p));
    return true;
  });
  return out;
}

Result<uint64_t> MetaStore::put_ops(const PendingOps& ops) {
  if (read_only()) return Error(Errc::read_only, "the write journal is held by another mount of this bucket");
  uint64_t id = ops.id;
  if (id == 0) {
    id = static_cast<uint64_t>(now_unix_ns());
  }
  std::string k = "o/";
  put_be64(k, id);
  std::string v;
  put_u8(v, kFormat);
  put_u32(v, static_cast<uint32_t>(ops.lines.size()));
  for (auto& [kind, path, hash, mtime] : ops.lines) {
    put_u8(v, static_cast<uint8_t>(kind));
    put_u16(v, static_cast<uint16_t>(path.size()));
    v += path;
    put_u8(v, static_cast<uint8_t>(hash.size()));
    v += hash;
    put_u64(v, static_cast<uint64_t>(mtime));
  }
  HF_TRY(kv_->put(kCfJournal, k, v, true));
  return id;
}

Status MetaStore::delete_ops(uint64_t id) {
  if (read_only()) return {};
  std::string k = "o/";
  put_be64(k, id);
  return kv_->del(kCfJournal, k, true);
}

std::vector<MetaStore::PendingOps> MetaStore::list_ops() {
  std::vector<PendingOps> out;
  (void)kv_->scan_prefix(kCfJournal, "o/", [&](std::string_view key, std::string_view value) {
    if (key.size() != 10) return true;
    PendingOps ops;
    for (size_t i = 0; i < 8; ++i) ops.id = ops.id << 8 | static_cast<uint8_t>(key[2 + i]);
    Reader r{value};
    uint8_t fmt = r.get<uint8_t>();
    uint32_t n = r.get<uint32_t>();
    if (!r.ok || fmt != kFormat || n > value.size()) return true;
    for (uint32_t i = 0; i < n && r.ok; ++i) {
      int kind = r.get<uint8_t>();
      std::string path = r.str(r.get<uint16_t>());
      std::string hash = r.str(r.get<uint8_t>());
      int64_t mtime = static_cast<int64_t>(r.get<uint64_t>());
      ops.lines.emplace_back(kind, std::move(path), std::move(hash), mtime);
    }
    if (r.ok) out.push_back(std::move(ops));
    return true;
  });
  return out;
}

}  // namespace hf::fs
