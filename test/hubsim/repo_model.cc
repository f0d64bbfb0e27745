#include "test/hubsim/repo_model.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <set>

#include "base/text.h"

namespace hf::hubsim {

namespace {

struct Sha1 {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  Sha1() { EVP_DigestInit_ex(ctx, EVP_sha1(), nullptr); }
  ~Sha1() { EVP_MD_CTX_free(ctx); }
  void update(const void* p, size_t n) { EVP_DigestUpdate(ctx, p, n); }
  std::array<uint8_t, 20> finish() {
    std::array<uint8_t, 20> out{};
    unsigned n = 0;
    EVP_DigestFinal_ex(ctx, out.data(), &n);
    return out;
  }
};

std::string to_hex(const std::array<uint8_t, 20>& d) { return hex_encode(d.data(), d.size()); }

}  // namespace

std::string sha1_hex(std::string_view data) {
  Sha1 h;
  h.update(data.data(), data.size());
  return to_hex(h.finish());
}

std::string git_blob_oid(std::string_view content) {
  Sha1 h;
  std::string hdr = fmt::format("blob {}", content.size());
  h.update(hdr.data(), hdr.size() + 1);  // including the NUL
  h.update(content.data(), content.size());
  return to_hex(h.finish());
}

std::string git_blob_oid(const ByteSource& content) {
  Sha1 h;
  std::string hdr = fmt::format("blob {}", content.size());
  h.update(hdr.data(), hdr.size() + 1);
  std::vector<uint8_t> scratch;
  uint64_t off = 0, n = content.size();
  while (off < n) {
    auto v = content.read(off, 1 << 20, scratch);
    h.update(v.data(), v.size());
    off += v.size();
  }
  return to_hex(h.finish());
}

std::string lfs_pointer(std::string_view sha256_hex, uint64_t size) {
  return fmt::format("version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n", sha256_hex, size);
}

Status validate_repo_path(std::string_view path) {
  if (path.empty()) return make_error(Errc::invalid_argument, "empty path");
  if (path.size() > 4096) return make_error(Errc::name_too_long, "path longer than 4096 bytes");
  if (path.front() == '/' || path.back() == '/')
    return make_error(Errc::invalid_argument, "path must not start or end with '/'");
  if (path.find('\0') != std::string_view::npos) return make_error(Errc::invalid_argument, "path contains NUL");
  for (auto comp : split(path, '/')) {
    if (comp.empty() || comp == "." || comp == "..")
      return make_error(Errc::invalid_argument, "path has an empty, '.' or '..' component");
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Snapshot

namespace {

std::string_view parent_dir(std::string_view path) {
  size_t p = path.rfind('/');
  return p == std::string_view::npos ? std::string_view() : path.substr(0, p);
}

std::string_view base_name(std::string_view path) {
  size_t p = path.rfind('/');
  return p == std::string_view::npos ? path : path.substr(p + 1);
}

}  // namespace

std::shared_ptr<Snapshot> Snapshot::build(const std::map<std::string, FileNodePtr>& files, const Snapshot* parent,
                                          const CommitInfoPtr& commit) {
  auto snap = std::make_shared<Snapshot>();
  // Directories (every ancestor of every file).
  std::set<std::string, std::less<>> dirs;
  for (const auto& [path, node] : files) {
    std::string_view d = parent_dir(path);
    while (!d.empty()) {
      if (!dirs.emplace(d).second) break;  // ancestors already present
      d = parent_dir(d);
    }
    snap->total_size_ += node->size;
  }
  // Entries sorted by path (bytewise): merge files and dirs.
  snap->entries_.reserve(files.size() + dirs.size());
  auto fi = files.begin();
  auto di = dirs.begin();
  while (fi != files.end() || di != dirs.end()) {
    bool take_dir = fi == files.end() || (di != dirs.end() && *di < fi->first);
    TreeEntry e;
    if (take_dir) {
      e.path = *di++;
      e.is_dir = true;
    } else {
      e.path = fi->first;
      e.file = fi->second;
      e.oid = fi->second->git_oid;
      ++fi;
    }
    snap->entries_.push_back(std::move(e));
  }
  // Children lists, in path order (entries are already sorted).
  snap->children_[""];
  for (uint32_t i = 0; i < snap->entries_.size(); ++i) {
    const auto& e = snap->entries_[i];
    snap->children_[std::string(parent_dir(e.path))].push_back(i);
    if (e.is_dir) snap->children_[e.path];
  }
  // Git tree oids, deepest directories first: a tree object is
  // "tree {len}\0" + for each child sorted git-style ("{mode} {name}\0{20 raw bytes}").
  std::vector<std::string> dir_list(dirs.begin(), dirs.end());
  std::sort(dir_list.begin(), dir_list.end(), [](const std::string& a, const std::string& b) {
    auto da = std::count(a.begin(), a.end(), '/'), db = std::count(b.begin(), b.end(), '/');
    return da != db ? da > db : a < b;
  });
  dir_list.push_back("");  // root last
  std::unordered_map<std::string, std::string> dir_oid;
  for (const auto& d : dir_list) {
    const auto& kids = snap->children_[d];
    struct Item {
      std::string key;  // git sort key: name, plus '/' for trees
      std::string_view name;
      bool dir;
      const std::string* oid;
    };
    std::vector<Item> items;
    items.reserve(kids.size());
    for (uint32_t k : kids) {
      const auto& e = snap->entries_[k];
      std::string_view name = base_name(e.path);
      const std::string* oid = e.is_dir ? &dir_oid[e.path] : &e.oid;
      items.push_back(Item{std::string(name) + (e.is_dir ? "/" : ""), name, e.is_dir, oid});
    }
    std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.key < b.key; });
    std::string body;
    for (const auto& it : items) {
      body += it.dir ? "40000 " : "100644 ";
      body += it.name;
      body.push_back('\0');
      auto raw = hex_decode(*it.oid);
      if (raw) body.append(reinterpret_cast<const char*>(raw->data()), raw->size());
    }
    std::string obj = fmt::format("tree {}", body.size());
    obj.push_back('\0');
    obj += body;
    dir_oid[d] = sha1_hex(obj);
  }
  for (auto& e : snap->entries_) {
    if (e.is_dir) e.oid = dir_oid[e.path];
  }
  snap->root_oid_ = dir_oid[""];
  // last_commit: inherited from the parent when the entry is unchanged.
  for (auto& e : snap->entries_) {
    const TreeEntry* pe = parent ? parent->find(e.path) : nullptr;
    if (pe && pe->is_dir == e.is_dir && pe->oid == e.oid) e.last_commit = pe->last_commit;
    else e.last_commit = commit;
  }
  return snap;
}

const TreeEntry* Snapshot::find(std::string_view path) const {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), path,
                             [](const TreeEntry& e, std::string_view p) { return e.path < p; });
  if (it == entries_.end() || it->path != path) return nullptr;
  return &*it;
}

std::pair<size_t, size_t> Snapshot::subtree(std::string_view dir) const {
  if (dir.empty()) return {0, entries_.size()};
  std::string lo = std::string(dir) + "/";
  std::string hi = std::string(dir) + "0";  // '0' follows '/'
  auto cmp = [](const TreeEntry& e, const std::string& p) { return e.path < p; };
  size_t b = std::lower_bound(entries_.begin(), entries_.end(), lo, cmp) - entries_.begin();
  size_t e = std::lower_bound(entries_.begin(), entries_.end(), hi, cmp) - entries_.begin();
  return {b, e};
}

const std::vector<uint32_t>* Snapshot::children(std::string_view dir) const {
  auto it = children_.find(std::string(dir));
  return it == children_.end() ? nullptr : &it->second;
}

std::map<std::string, FileNodePtr> Snapshot::files() const {
  std::map<std::string, FileNodePtr> out;
  for (const auto& e : entries_)
    if (!e.is_dir) out.emplace_hint(out.end(), e.path, e.file);
  return out;
}

CommitPtr make_commit(const std::map<std::string, FileNodePtr>& files, const CommitPtr& parent, std::string title,
                      int64_t date_ns) {
  auto info = std::make_shared<CommitInfo>();
  info->title = std::move(title);
  info->date_ns = date_ns;
  if (parent) info->parent = parent->info->sha;
  auto snap = Snapshot::build(files, parent ? parent->snap.get() : nullptr, info);
  int64_t secs = date_ns / 1000000000;
  std::string body = fmt::format("tree {}\n", snap->root_oid());
  if (!info->parent.empty()) body += fmt::format("parent {}\n", info->parent);
  body += fmt::format("author hubsim <hubsim@localhost> {} +0000\ncommitter hubsim <hubsim@localhost> {} +0000\n\n{}\n",
                      secs, secs, info->title);
  std::string obj = fmt::format("commit {}", body.size());
  obj.push_back('\0');
  obj += body;
  info->sha = sha1_hex(obj);
  auto c = std::make_shared<Commit>();
  c->info = info;
  c->snap = std::move(snap);
  return c;
}

// ---------------------------------------------------------------------------------------------
// Repo

CommitPtr Repo::resolve(std::string_view rev) const {
  auto by_sha = [&](const std::string& sha) -> CommitPtr {
    auto it = commits.find(sha);
    return it == commits.end() ? nullptr : it->second;
  };
  if (rev == "HEAD") return head();
  if (auto it = branches.find(std::string(rev)); it != branches.end()) return by_sha(it->second);
  if (auto it = tags.find(std::string(rev)); it != tags.end()) return by_sha(it->second);
  if (rev.starts_with("refs/heads/")) {
    if (auto it = branches.find(std::string(rev.substr(11))); it != branches.end()) return by_sha(it->second);
    return nullptr;
  }
  if (rev.starts_with("refs/tags/")) {
    if (auto it = tags.find(std::string(rev.substr(10))); it != tags.end()) return by_sha(it->second);
    return nullptr;
  }
  if (rev.starts_with("refs/pr/")) {
    auto n = parse_u64(rev.substr(8));
    if (!n || *n == 0 || *n > prs.size()) return nullptr;
    return by_sha(prs[*n - 1]);
  }
  if (rev.size() == 40) return by_sha(to_lower(rev));
  return nullptr;
}

CommitPtr Repo::head() const {
  auto it = branches.find("main");
  if (it == branches.end()) it = branches.begin();
  if (it == branches.end()) return nullptr;
  auto c = commits.find(it->second);
  return c == commits.end() ? nullptr : c->second;
}

int64_t Repo::last_modified_ns() const {
  auto h = head();
  return h ? h->info->date_ns : created_ns;
}

// ---------------------------------------------------------------------------------------------
// Buckets

void Bucket::put(const std::string& path, BucketFile f) {
  auto it = files.find(path);
  if (it != files.end()) {
    total_size -= it->second.size;
    total_size += f.size;
    it->second = std::move(f);
  } else {
    total_size += f.size;
    files.emplace(path, std::move(f));
  }
}

bool Bucket::erase(std::string_view path) {
  auto it = files.find(path);
  if (it == files.end()) return false;
  total_size -= it->second.size;
  files.erase(it);
  return true;
}

BucketListPage list_bucket(const Bucket& b, std::string_view prefix, bool recursive, std::string_view cursor_key,
                           size_t limit) {
  BucketListPage page;
  std::string resume(std::max(prefix, cursor_key));
  auto it = b.files.lower_bound(resume);
  auto in_prefix = [&](const std::string& k) { return k.compare(0, prefix.size(), prefix) == 0; };
  while (it != b.files.end() && in_prefix(it->first)) {
    if (page.entries.size() == limit) {
      page.next_key = it->first;
      return page;
    }
    const std::string& key = it->first;
    size_t cut = std::string::npos;  // end of the directory name when grouping
    if (!recursive && key.size() != prefix.size()) {
      if (prefix.empty()) {
        cut = key.find('/');
      } else if (key[prefix.size()] == '/') {
        cut = key.find('/', prefix.size() + 1);
      } else {
        cut = key.find('/', prefix.size());
      }
    }
    if (cut == std::string::npos) {
      page.entries.push_back(BucketListEntry{false, key, &it->second, it->second.uploaded_ns});
      ++it;
      continue;
    }
    // A directory: every key under "{dir}/" lies in [dir + "/", dir + "0").
    std::string dir = key.substr(0, cut);
    std::string end_key = dir + "0";
    int64_t newest = 0;
    auto last = b.files.lower_bound(end_key);
    for (auto j = it; j != last; ++j) newest = std::max(newest, j->second.uploaded_ns);
    page.entries.push_back(BucketListEntry{true, std::move(dir), nullptr, newest});
    it = last;
  }
  return page;
}

}  // namespace hf::hubsim
