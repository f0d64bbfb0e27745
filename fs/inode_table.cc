#include "fs/inode_table.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "base/log.h"
#include "base/text.h"

namespace hf::fs {

bool valid_entry_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  for (char c : name) {
    if (c == '/' || c == '\0') return false;
  }
  return true;
}

const InodeTable::DirState InodeTable::kNoDirState{};

InodeTable::InodeTable(InodeTableOptions opts) : opts_(opts) {
  Node root;
  root.ino = kRootIno;
  root.kind = NodeKind::dir;
  root.mtime_ns = opts_.default_mtime_ns;
  nodes_.emplace(kRootIno, std::move(root));
}

void InodeTable::set_default_mtime(int64_t ns) {
  std::unique_lock lk(mu_);
  opts_.default_mtime_ns = ns;
  nodes_.at(kRootIno).mtime_ns = ns;
}

Attr InodeTable::attr_of(const Node& n) const {
  Attr a;
  a.ino = n.ino;
  a.kind = n.kind;
  a.uid = n.uid != UINT32_MAX ? n.uid : opts_.uid;
  a.gid = n.gid != UINT32_MAX ? n.gid : opts_.gid;
  a.mtime_ns = n.mtime_ns ? n.mtime_ns : opts_.default_mtime_ns;
  a.ctime_ns = a.mtime_ns;
  switch (n.kind) {
    case NodeKind::dir:
      a.perm = n.perm ? n.perm : opts_.dir_perm;
      // GNU find treats nlink < 2 as "unknown" and then never skips stats; report the exact
      // count only when we know every subdirectory.
      a.nlink = n.listed ? 2 + n.dirs().subdirs : 1;
      a.size = 4096;
      break;
    case NodeKind::symlink:
      a.perm = 0777;
      a.size = n.symlink_target.size();
      break;
    case NodeKind::file:
      a.perm = n.perm ? n.perm : opts_.file_perm;
      a.size = n.size;
      break;
  }
  return a;
}

InodeTable::PackedContent& InodeTable::PackedContent::operator=(const Content& c) {
  source = c.source;
  rev = c.rev;
  id = c.id;
  etag_bytes = 0;
  etag_text.reset();
  const std::string& e = c.etag;
  // Packed only when unpacking gives the same text back: lowercase hex of at most 32 bytes.
  auto bin = e.size() <= 2 * etag_bin.size() ? hex_decode(e) : std::nullopt;
  if (bin && !bin->empty() && std::none_of(e.begin(), e.end(), [](char ch) { return ch >= 'A' && ch <= 'F'; })) {
    std::copy(bin->begin(), bin->end(), etag_bin.begin());
    etag_bytes = static_cast<uint8_t>(bin->size());
  } else if (!e.empty()) {
    etag_text = std::make_unique<std::string>(e);
  }
  return *this;
}

Content InodeTable::PackedContent::unpack() const {
  Content c;
  c.source = source;
  c.rev = rev;
  c.id = id;
  c.etag = etag_text ? *etag_text : hex_encode(etag_bin.data(), etag_bytes);
  return c;
}

NodeInfo InodeTable::info_of(const Node& n) const {
  NodeInfo i;
  i.attr = attr_of(n);
  i.parent = n.parent;
  i.name = n.name;
  i.content = n.content.unpack();
  i.symlink_target = n.symlink_target.str();
  return i;
}

std::optional<NodeInfo> InodeTable::get(uint64_t ino) const {
  std::shared_lock lk(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return std::nullopt;
  return info_of(it->second);
}

InodeTable::Node* InodeTable::child_locked(uint64_t parent, std::string_view name, ChildState* state) const {
  auto it = nodes_.find(parent);
  if (it == nodes_.end() || it->second.kind != NodeKind::dir) {
    *state = ChildState::absent;
    return nullptr;
  }
  const Node& dir = it->second;
  auto c = dir.dirs().children.find(name);
  if (c == dir.dirs().children.end()) {
    *state = dir.listed ? ChildState::absent : ChildState::unknown;
    return nullptr;
  }
  *state = ChildState::found;
  return *c;
}

InodeTable::ChildLookup InodeTable::lookup(uint64_t parent, std::string_view name) const {
  std::shared_lock lk(mu_);
  ChildLookup r;
  if (const Node* child = child_locked(parent, name, &r.state)) r.info = info_of(*child);
  return r;
}

InodeTable::ChildLookup InodeTable::lookup_counted(uint64_t parent, std::string_view name) {
  std::unique_lock lk(mu_);
  ChildLookup r;
  if (Node* child = child_locked(parent, name, &r.state)) {
    child->nlookup += 1;
    r.info = info_of(*child);
  }
  return r;
}

bool InodeTable::is_dir(uint64_t ino) const {
  std::shared_lock lk(mu_);
  auto it = nodes_.find(ino);
  return it != nodes_.end() && it->second.kind == NodeKind::dir;
}

bool InodeTable::is_listed(uint64_t dir) const {
  std::shared_lock lk(mu_);
  auto it = nodes_.find(dir);
  return it != nodes_.end() && it->second.listed;
}

std::string InodeTable::path_locked(const Node& n) const {
  if (n.ino == kRootIno) return {};
  std::vector<const std::string*> parts;
  const Node* cur = &n;
  while (cur->ino != kRootIno) {
    parts.push_back(&cur->name);
    auto it = nodes_.find(cur->parent);
    if (cur->parent == 0 || it == nodes_.end()) return {};
    cur = &it->second;
  }
  std::string p;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (!p.empty()) p.push_back('/');
    p += **it;
  }
  return p;
}

std::optional<std::string> InodeTable::path(uint64_t ino) const {
  std::shared_lock lk(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return std::nullopt;
  if (ino != kRootIno && it->second.parent == 0) return std::nullopt;
  std::string p = path_locked(it->second);
  if (ino != kRootIno && p.empty()) return std::nullopt;
  return p;
}

uint64_t InodeTable::allocate_ino(const std::string& path) const {
  constexpr uint64_t kSeed = 0x68666d6f756e7431ULL;  // "hfmount1"
  uint64_t h = XXH3_64bits_withSeed(path.data(), path.size(), kSeed);
  for (uint64_t salt = 1;; ++salt) {
    if (h > kRootIno && !nodes_.count(h)) return h;
    std::string salted = path;
    salted.push_back('\0');
    salted += std::to_string(salt);
    h = XXH3_64bits_withSeed(salted.data(), salted.size(), kSeed);
  }
}

void InodeTable::detach_locked(Node& child) {
  auto pit = nodes_.find(child.parent);
  if (pit != nodes_.end()) {
    DirState& p = pit->second.dirs_mut();
    auto self = p.children.find(std::string_view(child.name));
    if (self != p.children.end()) p.children.erase(self);
    if (child.kind == NodeKind::dir && p.subdirs > 0) --p.subdirs;
    p.snap.reset();
  }
  child.parent = 0;
}

void InodeTable::maybe_free_locked(uint64_t ino) {
  std::vector<uint64_t> stack{ino};
  while (!stack.empty()) {
    uint64_t cur = stack.back();
    stack.pop_back();
    auto it = nodes_.find(cur);
    if (it == nodes_.end()) continue;
    Node& n = it->second;
    if (n.parent != 0 || n.nlookup != 0 || n.ino == kRootIno) continue;
    // Children of a freed directory become orphans themselves.
    for (Node* c : n.dirs().children) {
      c->parent = 0;
      stack.push_back(c->ino);
    }
    if (n.listed) --listed_dirs_;
    nodes_.erase(it);
  }
}

uint64_t InodeTable::epoch() const {
  std::shared_lock lk(mu_);
  return epoch_;
}

void InodeTable::begin_local_change(uint64_t dir) {
  std::unique_lock lk(mu_);
  auto it = nodes_.find(dir);
  if (it != nodes_.end()) it->second.dirs_mut().busy++;
}

void InodeTable::end_local_change(uint64_t dir) {
  std::unique_lock lk(mu_);
  auto it = nodes_.find(dir);
  if (it == nodes_.end()) return;
  if (it->second.dirs_mut().busy > 0) it->second.dirs_mut().busy--;
  it->second.dirs_mut().changed_epoch = ++epoch_;
}

void InodeTable::attrs_changed_locked(const Node& child) {
  auto p = nodes_.find(child.parent);
  if (p == nodes_.end()) return;
  p->second.dirs_mut().snap.reset();
  p->second.dirs_mut().changed_epoch = ++epoch_;
}

void InodeTable::touch_locked(uint64_t dir_ino) {
  auto it = nodes_.find(dir_ino);
  if (it != nodes_.end()) it->second.dirs_mut().changed_epoch = ++epoch_;
}

ListingDiff InodeTable::apply_listing(uint64_t dir_ino, std::vector<ListedEntry> entries, uint64_t listed_since) {
  ListingDiff diff;
  std::unique_lock lk(mu_);
  auto dit = nodes_.find(dir_ino);
  if (dit == nodes_.end() || dit->second.kind != NodeKind::dir) return diff;
  Node& dir = dit->second;
  if (listed_since != UINT64_MAX && (dir.dirs().busy > 0 || dir.dirs().changed_epoch > listed_since)) {
    diff.skipped = true;
    return diff;
  }
  std::string dir_path = path_locked(dir);

  std::map<std::string, ListedEntry*, std::less<>> incoming;
  for (auto& e : entries) {
    if (!valid_entry_name(e.name)) continue;  // the caller logs; never serve such names
    incoming.emplace(e.name, &e);             // duplicates: first wins
  }

  // Remove children that disappeared or changed kind.
  std::vector<uint64_t> gone;
  for (const Node* c : dir.dirs().children) {
    auto in = incoming.find(c->name);
    if (c->local) continue;  // local changes win until committed
    if (in == incoming.end() || in->second->kind != c->kind) gone.push_back(c->ino);
  }
  for (uint64_t cino : gone) {
    Node& c = nodes_.at(cino);
    diff.removed.push_back(c.name);
    detach_locked(c);
    maybe_free_locked(cino);
  }

  for (auto& [name, e] : incoming) {
    auto cit = dir.dirs().children.find(std::string_view(name));
    if (cit != dir.dirs().children.end()) {
      Node& c = **cit;
      if (c.local || c.kind != e->kind) continue;
      bool changed = !c.content.same_as(e->content) || c.size != e->size ||
                     !(c.symlink_target == e->symlink_target);
      c.size = e->size;
      c.mtime_ns = e->mtime_ns;
      c.content = e->content;
      c.symlink_target = e->symlink_target;
      if (changed) diff.changed.push_back(c.ino);
      continue;
    }
    std::string child_path = dir_path.empty() ? name : dir_path + "/" + name;
    Node n;
    n.ino = allocate_ino(child_path);
    n.parent = dir_ino;
    n.name = name;
    n.kind = e->kind;
    n.size = e->size;
    n.mtime_ns = e->mtime_ns;
    n.content = e->content;
    n.symlink_target = e->symlink_target;
    if (n.kind == NodeKind::dir) ++dir.dirs_mut().subdirs;
    diff.added.push_back(name);
    uint64_t ino = n.ino;
    auto placed = nodes_.emplace(ino, std::move(n)).first;
    dir.dirs_mut().children.insert(&placed->second);
  }
  if (!dir.listed) {
    dir.listed = true;
    ++listed_dirs_;
  }
  dir.dirs_mut().snap.reset();
  return diff;
}

bool InodeTable::add_lookup(uint64_t ino, uint64_t n) {
  std::unique_lock lk(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return false;
  it->second.nlookup += n;
  return true;
}

bool InodeTable::forget(uint64_t ino, uint64_t n) {
  if (ino == kRootIno) return false;  // the kernel never really forgets the root
  std::unique_lock lk(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) {
    HF_LOG_ERROR("inode", "forget of unknown inode {} (n={})", ino, n);
    return false;
  }
  Node& node = it->second;
  if (node.nlookup < n) {
    // The kernel's count and ours disagree (a bug). Freeing early only costs the kernel an
    // ENOENT for this inode later; aborting would take every user's mount down.
    HF_LOG_ERROR("inode", "lookup count underflow on inode {}: have {}, forget {}", ino, node.nlookup, n);
    n = node.nlookup;
  }
  node.nlookup -= n;
  if (node.nlookup != 0 || node.parent != 0) return false;
  maybe_free_locked(ino);
  return true;
}

std::shared_ptr<const DirSnapshot> InodeTable::snapshot(uint64_t dir_ino) const {
  {
    std::shared_lock lk(mu_);
    auto it = nodes_.find(dir_ino);
    if (it == nodes_.end() || it->second.kind != NodeKind::dir || !it->second.listed) return nullptr;
    if (auto snap = it->second.dirs().snap.lock()) return snap;
  }
  std::unique_lock lk(mu_);
  auto it = nodes_.find(dir_ino);
  if (it == nodes_.end() || it->second.kind != NodeKind::dir || !it->second.listed) return nullptr;
  Node& dir = it->second;
  if (auto cached = dir.dirs().snap.lock()) return cached;
  auto snap = std::make_shared<DirSnapshot>();
  snap->dir_ino = dir.ino;
  snap->parent_ino = dir.parent ? dir.parent : dir.ino;
  snap->entries.reserve(dir.dirs().children.size());
  for (const Node* c : dir.dirs().children) snap->entries.push_back(DirSnapshotEntry{c->name, attr_of(*c)});
  dir.dirs_mut().snap = snap;
  return snap;
}

Result<NodeInfo> InodeTable::create(uint64_t parent, std::string_view name, const NewNode& nn, bool local,
                                    uint64_t nlookup) {
  if (!valid_entry_name(name)) {
    return Error(name.size() > 255 ? Errc::name_too_long : Errc::invalid_argument, "invalid file name");
  }
  std::unique_lock lk(mu_);
  auto pit = nodes_.find(parent);
  if (pit == nodes_.end()) return Error(Errc::not_found, "parent directory no longer exists");
  Node& dir = pit->second;
  if (dir.kind != NodeKind::dir) return Error(Errc::not_dir, "parent is not a directory");
  if (dir.parent == 0 && dir.ino != kRootIno) return Error(Errc::not_found, "parent directory was removed");
  if (dir.dirs().children.count(name)) return Error(Errc::exists, "file exists");
  std::string dir_path = path_locked(dir);
  std::string child_path = dir_path.empty() ? std::string(name) : dir_path + "/" + std::string(name);
  Node n;
  n.ino = allocate_ino(child_path);
  n.parent = parent;
  n.name = std::string(name);
  n.kind = nn.kind;
  n.size = nn.size;
  n.mtime_ns = nn.mtime_ns;
  n.content = nn.content;
  n.symlink_target = nn.symlink_target;
  n.perm = nn.perm;
  n.local = local;
  n.nlookup = nlookup;
  if (n.kind == NodeKind::dir) {
    n.listed = true;  // a new directory is complete: it is empty
    ++listed_dirs_;
    ++dir.dirs_mut().subdirs;
  }
  dir.dirs_mut().snap.reset();
  dir.dirs_mut().changed_epoch = ++epoch_;
  NodeInfo info = info_of(n);
  const uint64_t ino = n.ino;
  auto placed = nodes_.emplace(ino, std::move(n)).first;
  dir.dirs_mut().children.insert(&placed->second);
  return info;
}

Result<NodeInfo> InodeTable::remove(uint64_t parent, std::string_view name) {
  std::unique_lock lk(mu_);
  auto pit = nodes_.find(parent);
  if (pit == nodes_.end() || pit->second.kind != NodeKind::dir) return Error(Errc::not_found, "no such directory");
  auto c = pit->second.dirs().children.find(name);
  if (c == pit->second.dirs().children.end()) return Error(Errc::not_found, "no such file or directory");
  Node& child = **c;
  uint64_t cino = child.ino;
  NodeInfo info = info_of(child);
  touch_locked(parent);
  detach_locked(child);
  maybe_free_locked(cino);
  return info;
}

Status InodeTable::rename(uint64_t parent, std::string_view name, uint64_t new_parent, std::string_view new_name,
                          bool no_replace) {
  if (!valid_entry_name(new_name)) {
    return Error(new_name.size() > 255 ? Errc::name_too_long : Errc::invalid_argument, "invalid file name");
  }
  std::unique_lock lk(mu_);
  auto pit = nodes_.find(parent);
  auto npit = nodes_.find(new_parent);
  if (pit == nodes_.end() || npit == nodes_.end()) return Error(Errc::not_found, "no such directory");
  Node& from_dir = pit->second;
  Node& to_dir = npit->second;
  if (to_dir.kind != NodeKind::dir) return Error(Errc::not_dir, "target parent is not a directory");
  auto c = from_dir.dirs().children.find(name);
  if (c == from_dir.dirs().children.end()) return Error(Errc::not_found, "no such file or directory");
  Node& moving = **c;
  // A directory cannot move below itself.
  for (const Node* p = &to_dir; p; ) {
    if (p->ino == moving.ino) return Error(Errc::invalid_argument, "cannot move a directory into itself");
    if (p->ino == kRootIno || p->parent == 0) break;
    auto it = nodes_.find(p->parent);
    p = it == nodes_.end() ? nullptr : &it->second;
  }
  auto t = to_dir.dirs().children.find(new_name);
  if (t != to_dir.dirs().children.end()) {
    if (*t == &moving) return {};  // same node: nothing to do
    if (no_replace) return Error(Errc::exists, "target exists");
    Node& target = **t;
    if (target.kind == NodeKind::dir && moving.kind != NodeKind::dir) return Error(Errc::is_dir, "target is a directory");
    if (target.kind != NodeKind::dir && moving.kind == NodeKind::dir) return Error(Errc::not_dir, "target is not a directory");
    if (target.kind == NodeKind::dir && !target.dirs().children.empty()) return Error(Errc::not_empty, "target directory not empty");
    uint64_t tino = target.ino;
    detach_locked(target);
    maybe_free_locked(tino);
  }
  touch_locked(parent);
  touch_locked(new_parent);
  if (moving.kind == NodeKind::dir) moving.dirs_mut().changed_epoch = ++epoch_;  // its remote path changed
  detach_locked(moving);
  moving.name = std::string(new_name);
  moving.parent = new_parent;
  to_dir.dirs_mut().children.insert(&moving);
  if (moving.kind == NodeKind::dir) ++to_dir.dirs_mut().subdirs;
  to_dir.dirs_mut().snap.reset();
  return {};
}

void InodeTable::set_local(uint64_t ino, bool local) {
  std::unique_lock lk(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return;
  it->second.local = local;
  touch_locked(it->second.parent);
}

bool InodeTable::is_local(uint64_t ino) const {
  std::shared_lock lk(mu_);
  auto it = nodes_.find(ino);
  return it != nodes_.end() && it->second.local;
}

void InodeTable::set_size(uint64_t ino, uint64_t size, int64_t mtime_ns) {
  std::unique_lock lk(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return;
  it->second.size = size;
  if (mtime_ns) it->second.mtime_ns = mtime_ns;
  attrs_changed_locked(it->second);
}

void InodeTable::set_content(uint64_t ino, const Content& c, uint64_t size, int64_t mtime_ns) {
  std::unique_lock lk(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return;
  if (it->second.parent == 0 && it->second.content.source == Content::Source::local) return;
  it->second.content = c;
  it->second.size = size;
  if (mtime_ns) it->second.mtime_ns = mtime_ns;
  attrs_changed_locked(it->second);
}

void InodeTable::set_written(uint64_t ino, uint64_t size, int64_t mtime_ns, const Content& staged) {
  std::unique_lock lk(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return;
  Node& n = it->second;
  n.size = size;
  if (mtime_ns) n.mtime_ns = mtime_ns;
  n.local = true;
  if (n.parent == 0 && n.ino != kRootIno) n.content = staged;
  attrs_changed_locked(n);
}

void InodeTable::set_meta(uint64_t ino, std::optional<uint32_t> perm, std::optional<uint32_t> uid,
                          std::optional<uint32_t> gid, std::optional<int64_t> mtime_ns) {
  std::unique_lock lk(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return;
  Node& n = it->second;
  if (perm) n.perm = *perm & 07777;
  if (uid) n.uid = *uid;
  if (gid) n.gid = *gid;
  if (mtime_ns) n.mtime_ns = *mtime_ns;
  attrs_changed_locked(n);
}

std::vector<uint64_t> InodeTable::listed_directories() const {
  std::shared_lock lk(mu_);
  std::vector<uint64_t> out;
  std::vector<uint64_t> stack{kRootIno};
  while (!stack.empty()) {
    uint64_t ino = stack.back();
    stack.pop_back();
    auto it = nodes_.find(ino);
    if (it == nodes_.end() || !it->second.listed) continue;
    out.push_back(ino);
    for (const Node* c : it->second.dirs().children) {
      if (c->kind == NodeKind::dir && c->listed) stack.push_back(c->ino);
    }
  }
  return out;
}

std::vector<std::pair<uint64_t, std::string>> InodeTable::files_below(uint64_t dir) const {
  std::shared_lock lk(mu_);
  std::vector<std::pair<uint64_t, std::string>> out;
  std::vector<std::pair<uint64_t, std::string>> stack{{dir, ""}};
  while (!stack.empty()) {
    auto [ino, prefix] = stack.back();
    stack.pop_back();
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) continue;
    for (const Node* c : it->second.dirs().children) {
      std::string p = prefix.empty() ? c->name : prefix + "/" + c->name;
      if (c->kind == NodeKind::dir) {
        stack.emplace_back(c->ino, p);
      } else {
        out.emplace_back(c->ino, p);
      }
    }
  }
  return out;
}

size_t InodeTable::size() const {
  std::shared_lock lk(mu_);
  return nodes_.size();
}

size_t InodeTable::listed_dirs() const {
  std::shared_lock lk(mu_);
  return listed_dirs_;
}

}  // namespace hf::fs
