#include "cache/kv_store.h"

#include <fmt/format.h>
#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/text.h"

namespace hf::cache {

namespace {

constexpr std::string_view kDefaultCf = "default";

rocksdb::Slice slice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

Error to_error(const rocksdb::Status& s, std::string_view what) {
  Errc c = Errc::internal;
  if (s.IsNoSpace()) c = Errc::no_space;
  else if (s.IsIOError()) c = Errc::io;
  else if (s.IsCorruption()) c = Errc::corrupt;
  else if (s.IsBusy()) c = Errc::busy;
  else if (s.IsTryAgain()) c = Errc::again;
  else if (s.IsTimedOut()) c = Errc::timed_out;
  else if (s.IsNotSupported()) c = Errc::unsupported;
  else if (s.IsInvalidArgument()) c = Errc::invalid_argument;
  else if (s.IsNotFound()) c = Errc::not_found;
  else if (s.IsIncomplete() || s.IsAborted()) c = Errc::io;
  std::string msg = fmt::format("{}: {}", what, s.ToString());
  std::replace(msg.begin(), msg.end(), '\n', ' ');
  return make_error(c, std::move(msg));
}

// Smallest key greater than every key that starts with `prefix`; nullopt if none exists
// (empty prefix, or all 0xff bytes).
std::optional<std::string> prefix_successor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty() && static_cast<uint8_t>(s.back()) == 0xff) s.pop_back();
  if (s.empty()) return std::nullopt;
  s.back() = static_cast<char>(static_cast<uint8_t>(s.back()) + 1);
  return s;
}

rocksdb::CompressionType best_compression() {
  auto supported = rocksdb::GetSupportedCompressions();
  for (auto t : {rocksdb::kLZ4Compression, rocksdb::kSnappyCompression})
    if (std::find(supported.begin(), supported.end(), t) != supported.end()) return t;
  return rocksdb::kNoCompression;
}

rocksdb::ColumnFamilyOptions cf_options(const KvOptions& o, size_t prefix_len,
                                        const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions c;
  c.write_buffer_size = o.write_buffer_bytes;
  c.max_write_buffer_number = 2;
  c.level_compaction_dynamic_level_bytes = true;
  c.target_file_size_base = 16ull << 20;
  c.max_bytes_for_level_base = 64ull << 20;
  c.compression = best_compression();
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  t.whole_key_filtering = true;  // point lookups (get) dominate
  t.cache_index_and_filter_blocks = true;  // memory stays within block_cache_bytes
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  t.format_version = 5;
  if (prefix_len > 0) {
    c.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(prefix_len));
    c.memtable_prefix_bloom_size_ratio = 0.1;
  }
  c.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return c;
}

rocksdb::DBOptions db_options(const KvOptions& o) {
  rocksdb::DBOptions d;
  d.create_if_missing = o.create_if_missing;
  d.create_missing_column_families = true;
  d.max_open_files = o.max_open_files;
  d.max_background_jobs = 2;
  d.max_total_wal_size = 64ull << 20;
  d.db_write_buffer_size = 64ull << 20;
  d.bytes_per_sync = 1ull << 20;
  d.keep_log_file_num = 3;
  d.max_log_file_size = 1ull << 20;
  d.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  d.avoid_unnecessary_blocking_io = true;
  return d;
}

// Creates the directory (and parents) if missing; the leaf is made private (0700): keys name
// repos and paths that may be private.
Status ensure_dir(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return {};
  std::filesystem::create_directories(path, ec);
  if (ec) return make_error(Errc::io, fmt::format("create directory {}: {}", path, ec.message()));
  ::chmod(path.c_str(), 0700);
  return {};
}

}  // namespace

struct KvStore::Impl {
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  std::vector<std::string> names;
  std::vector<size_t> prefix_lens;
  std::shared_ptr<rocksdb::Cache> block_cache;
  bool secondary = false;
  std::string path;

  ~Impl() {
    if (!db) return;
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    db->Close();
    delete db;
  }

  Result<size_t> cf_index(std::string_view cf) const {
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == cf) return i;
    return make_error(Errc::invalid_argument, fmt::format("unknown column family '{}'", cf));
  }

  Status check_writable() const {
    if (secondary) return make_error(Errc::read_only, "kv store " + path + " is a read-only secondary");
    return {};
  }

  static Result<std::unique_ptr<Impl>> open(const std::string& path, const std::string* secondary_dir,
                                            const KvOptions& o) {
    auto impl = std::make_unique<Impl>();
    impl->path = path;
    impl->secondary = secondary_dir != nullptr;
    impl->block_cache = rocksdb::NewLRUCache(std::max<uint64_t>(o.block_cache_bytes, 1ull << 20));
    rocksdb::DBOptions dbo = db_options(o);
    if (impl->secondary) dbo.max_open_files = -1;  // required by secondary instances

    std::vector<std::string> existing;
    rocksdb::Status ls = rocksdb::DB::ListColumnFamilies(dbo, path, &existing);
    if (!ls.ok()) {
      if (impl->secondary) return to_error(ls, "open secondary " + path);
      existing.clear();  // a new DB
    }
    // Requested families first (with their options), then any others the DB already has.
    std::vector<std::pair<std::string, size_t>> fams{{std::string(kDefaultCf), 0}};
    for (const auto& cf : o.column_families) {
      if (cf.name.empty()) return make_error(Errc::invalid_argument, "empty column family name");
      auto it = std::find_if(fams.begin(), fams.end(), [&](auto& f) { return f.first == cf.name; });
      if (it == fams.end()) fams.emplace_back(cf.name, cf.fixed_prefix_len);
      else it->second = cf.fixed_prefix_len;
    }
    for (const auto& name : existing)
      if (std::none_of(fams.begin(), fams.end(), [&](auto& f) { return f.first == name; }))
        fams.emplace_back(name, 0);
    if (impl->secondary) {
      // A secondary cannot create families: open only those that exist.
      std::erase_if(fams, [&](auto& f) {
        return std::find(existing.begin(), existing.end(), f.first) == existing.end();
      });
    }
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const auto& [name, plen] : fams) {
      descs.emplace_back(name, cf_options(o, plen, impl->block_cache));
      impl->names.push_back(name);
      impl->prefix_lens.push_back(plen);
    }

    rocksdb::Status s;
    if (impl->secondary) {
      HF_TRY(ensure_dir(*secondary_dir));
      s = rocksdb::DB::OpenAsSecondary(dbo, path, *secondary_dir, descs, &impl->handles, &impl->db);
    } else {
      if (o.create_if_missing) HF_TRY(ensure_dir(path));
      s = rocksdb::DB::Open(dbo, path, descs, &impl->handles, &impl->db);
    }
    if (!s.ok()) {
      impl->db = nullptr;
      // RocksDB reports the LOCK file held as an IOError: "While lock file: <path>/LOCK: ..."
      // (another process) or "lock hold by current process" (this one).
      const std::string what = s.ToString();
      if (!impl->secondary && s.IsIOError() &&
          (what.find("While lock file") != std::string::npos ||
           what.find("lock hold by current process") != std::string::npos))
        return make_error(Errc::busy, fmt::format("kv store {} is in use by another process or "
                                                  "instance ({})", path, what));
      return to_error(s, (impl->secondary ? "open secondary " : "open ") + path);
    }
    return impl;
  }
};

KvStore::KvStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KvStore::~KvStore() = default;

Result<std::unique_ptr<KvStore>> KvStore::open(const std::string& path, KvOptions opts) {
  HF_ASSIGN_OR_RETURN(auto impl, Impl::open(path, nullptr, opts));
  return std::unique_ptr<KvStore>(new KvStore(std::move(impl)));
}

Result<std::unique_ptr<KvStore>> KvStore::open_secondary(const std::string& path,
                                                         const std::string& secondary_dir,
                                                         KvOptions opts) {
  HF_ASSIGN_OR_RETURN(auto impl, Impl::open(path, &secondary_dir, opts));
  return std::unique_ptr<KvStore>(new KvStore(std::move(impl)));
}

bool KvStore::is_secondary() const { return impl_->secondary; }
std::vector<std::string> KvStore::column_families() const { return impl_->names; }

uint64_t KvStore::memory_bytes() const {
  uint64_t total = impl_->block_cache ? impl_->block_cache->GetUsage() : 0;
  for (auto* h : impl_->handles) {
    for (const char* prop : {"rocksdb.cur-size-all-mem-tables", "rocksdb.estimate-table-readers-mem"}) {
      uint64_t v = 0;
      if (impl_->db->GetIntProperty(h, prop, &v)) total += v;
    }
  }
  return total;
}

Result<std::optional<std::string>> KvStore::get(std::string_view cf, std::string_view key) const {
  HF_ASSIGN_OR_RETURN(size_t i, impl_->cf_index(cf));
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), impl_->handles[i], slice(key), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return to_error(s, "kv get");
  return std::optional<std::string>(std::move(value));
}

Status KvStore::put(std::string_view cf, std::string_view key, std::string_view value, bool sync) {
  HF_TRY(impl_->check_writable());
  HF_ASSIGN_OR_RETURN(size_t i, impl_->cf_index(cf));
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  rocksdb::Status s = impl_->db->Put(wo, impl_->handles[i], slice(key), slice(value));
  if (!s.ok()) return to_error(s, "kv put");
  return {};
}

Status KvStore::del(std::string_view cf, std::string_view key, bool sync) {
  HF_TRY(impl_->check_writable());
  HF_ASSIGN_OR_RETURN(size_t i, impl_->cf_index(cf));
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  rocksdb::Status s = impl_->db->Delete(wo, impl_->handles[i], slice(key));
  if (!s.ok()) return to_error(s, "kv del");
  return {};
}

Status KvStore::scan_prefix(std::string_view cf, std::string_view prefix,
                            const std::function<bool(std::string_view, std::string_view)>& fn) const {
  HF_ASSIGN_OR_RETURN(size_t i, impl_->cf_index(cf));
  rocksdb::ReadOptions ro;
  std::optional<std::string> upper = prefix_successor(prefix);
  rocksdb::Slice upper_slice;
  if (upper) {
    upper_slice = slice(*upper);
    ro.iterate_upper_bound = &upper_slice;
  }
  // The prefix extractor may only be used when the scan prefix is at least as long as it.
  const size_t plen = impl_->prefix_lens[i];
  if (plen > 0 && prefix.size() >= plen) ro.prefix_same_as_start = true;
  else ro.total_order_seek = true;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->handles[i]));
  for (it->Seek(slice(prefix)); it->Valid(); it->Next()) {
    rocksdb::Slice k = it->key();
    if (!k.starts_with(slice(prefix))) break;
    rocksdb::Slice v = it->value();
    if (!fn(std::string_view(k.data(), k.size()), std::string_view(v.data(), v.size()))) break;
  }
  if (!it->status().ok()) return to_error(it->status(), "kv scan");
  return {};
}

Status KvStore::delete_prefix(std::string_view cf, std::string_view prefix, bool sync) {
  WriteBatch b = batch();
  b.delete_prefix(cf, prefix);
  return b.commit(sync);
}

// ---- WriteBatch ----

struct KvStore::WriteBatch::Impl {
  KvStore* store = nullptr;
  rocksdb::WriteBatch wb;
  std::optional<Error> err;
};

KvStore::WriteBatch::WriteBatch(KvStore* store) : impl_(std::make_unique<Impl>()) {
  impl_->store = store;
}
KvStore::WriteBatch::~WriteBatch() = default;
KvStore::WriteBatch::WriteBatch(WriteBatch&&) noexcept = default;
KvStore::WriteBatch& KvStore::WriteBatch::operator=(WriteBatch&&) noexcept = default;

KvStore::WriteBatch KvStore::batch() { return WriteBatch(this); }

void KvStore::WriteBatch::put(std::string_view cf, std::string_view key, std::string_view value) {
  auto i = impl_->store->impl_->cf_index(cf);
  if (!i.ok()) {
    if (!impl_->err) impl_->err = i.error();
    return;
  }
  impl_->wb.Put(impl_->store->impl_->handles[*i], slice(key), slice(value));
}

void KvStore::WriteBatch::del(std::string_view cf, std::string_view key) {
  auto i = impl_->store->impl_->cf_index(cf);
  if (!i.ok()) {
    if (!impl_->err) impl_->err = i.error();
    return;
  }
  impl_->wb.Delete(impl_->store->impl_->handles[*i], slice(key));
}

void KvStore::WriteBatch::delete_prefix(std::string_view cf, std::string_view prefix) {
  KvStore::Impl& st = *impl_->store->impl_;
  auto i = st.cf_index(cf);
  if (!i.ok()) {
    if (!impl_->err) impl_->err = i.error();
    return;
  }
  if (auto upper = prefix_successor(prefix)) {
    impl_->wb.DeleteRange(st.handles[*i], slice(prefix), slice(*upper));
    return;
  }
  // No successor (empty or all-0xff prefix): delete the keys one by one.
  Status s = impl_->store->scan_prefix(cf, prefix, [&](std::string_view k, std::string_view) {
    impl_->wb.Delete(st.handles[*i], slice(k));
    return true;
  });
  if (!s.ok() && !impl_->err) impl_->err = s.error();
}

size_t KvStore::WriteBatch::count() const { return static_cast<size_t>(impl_->wb.Count()); }

Status KvStore::WriteBatch::commit(bool sync) {
  std::optional<Error> err = std::move(impl_->err);
  impl_->err.reset();
  if (err) {
    impl_->wb.Clear();
    return std::move(*err);
  }
  Status w = impl_->store->impl_->check_writable();
  if (!w.ok()) {
    impl_->wb.Clear();
    return w;
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  rocksdb::Status s = impl_->store->impl_->db->Write(wo, &impl_->wb);
  impl_->wb.Clear();
  if (!s.ok()) return to_error(s, "kv write batch");
  return {};
}

// ---- maintenance ----

Status KvStore::try_catch_up() {
  if (!impl_->secondary) return {};
  rocksdb::Status s = impl_->db->TryCatchUpWithPrimary();
  if (!s.ok()) return to_error(s, "kv catch up");
  return {};
}

Status KvStore::compact() {
  HF_TRY(impl_->check_writable());
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (auto* h : impl_->handles) {
    rocksdb::Status s = impl_->db->CompactRange(co, h, nullptr, nullptr);
    if (!s.ok()) return to_error(s, "kv compact");
  }
  return {};
}

Result<uint64_t> KvStore::approximate_size(std::string_view cf) const {
  std::vector<size_t> which;
  if (cf.empty()) {
    for (size_t i = 0; i < impl_->handles.size(); ++i) which.push_back(i);
  } else {
    HF_ASSIGN_OR_RETURN(size_t i, impl_->cf_index(cf));
    which.push_back(i);
  }
  uint64_t total = 0;
  for (size_t i : which) {
    uint64_t v = 0;
    if (impl_->db->GetIntProperty(impl_->handles[i], "rocksdb.live-sst-files-size", &v)) total += v;
    if (impl_->db->GetIntProperty(impl_->handles[i], "rocksdb.cur-size-all-mem-tables", &v)) total += v;
  }
  return total;
}

}  // namespace hf::cache
