#include "fs/inode_table.h"

#include <xxhash.h>

#include <cstdlib>
#include <mutex>

#include "base/log.h"

namespace hf::fs {

bool valid_entry_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  for (char c : name) {
    if (c == '/' || c == '\0') return false;
  }
  return true;
}

InodeTable::InodeTable(InodeTableOptions opts) : opts_(opts) {
  auto root = std::make_unique<Node>();
  root->ino = kRootIno;
  root->kind = NodeKind::dir;
  root->mtime_ns = opts_.default_mtime_ns;
  nodes_.emplace(kRootIno, std::move(root));
}

void InodeTable::set_default_mtime(int64_t ns) {
  std::unique_lock lk(mu_);
  opts_.default_mtime_ns = ns;
  nodes_.at(kRootIno)->mtime_ns = ns;
}

Attr InodeTable::attr_of(const Node& n) const {
  Attr a;
  a.ino = n.ino;
  a.kind = n.kind;
  a.uid = opts_.uid;
  a.gid = opts_.gid;
  a.mtime_ns = n.mtime_ns ? n.mtime_ns : opts_.default_mtime_ns;
  a.ctime_ns = a.mtime_ns;
  switch (n.kind) {
    case NodeKind::dir:
      a.perm = opts_.dir_perm;
      // GNU find treats nlink < 2 as "unknown" and then never skips stats; report the exact
      // count only when we know every subdirectory.
      a.nlink = n.listed ? 2 + n.subdirs : 1;
      a.size = 4096;
      break;
    case NodeKind::symlink:
      a.perm = 0777;
      a.size = n.symlink_target.size();
      break;
    case NodeKind::file:
      a.perm = opts_.file_perm;
      a.size = n.size;
      break;
  }
  return a;
}

NodeInfo InodeTable::info_of(const Node& n) const {
  NodeInfo i;
  i.attr = attr_of(n);
  i.parent = n.parent;
  i.name = n.name;
  i.content = n.content;
  i.symlink_target = n.symlink_target;
  return i;
}

std::optional<NodeInfo> InodeTable::get(uint64_t ino) const {
  std::shared_lock lk(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return std::nullopt;
  return info_of(*it->second);
}

InodeTable::ChildLookup InodeTable::lookup(uint64_t parent, std::string_view name) const {
  std::shared_lock lk(mu_);
  ChildLookup r;
  auto it = nodes_.find(parent);
  if (it == nodes_.end() || it->second->kind != NodeKind::dir) {
    r.state = ChildState::absent;
    return r;
  }
  const Node& dir = *it->second;
  auto c = dir.children.find(name);
  if (c == dir.children.end()) {
    r.state = dir.listed ? ChildState::absent : ChildState::unknown;
    return r;
  }
  r.state = ChildState::found;
  r.info = info_of(*nodes_.at(c->second));
  return r;
}

bool InodeTable::is_dir(uint64_t ino) const {
  std::shared_lock lk(mu_);
  auto it = nodes_.find(ino);
  return it != nodes_.end() && it->second->kind == NodeKind::dir;
}

bool InodeTable::is_listed(uint64_t dir) const {
  std::shared_lock lk(mu_);
  auto it = nodes_.find(dir);
  return it != nodes_.end() && it->second->listed;
}

std::string InodeTable::path_locked(const Node& n) const {
  if (n.ino == kRootIno) return {};
  std::vector<const std::string*> parts;
  const Node* cur = &n;
  while (cur->ino != kRootIno) {
    parts.push_back(&cur->name);
    auto it = nodes_.find(cur->parent);
    if (cur->parent == 0 || it == nodes_.end()) return {};
    cur = it->second.get();
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
  if (ino != kRootIno && it->second->parent == 0) return std::nullopt;
  std::string p = path_locked(*it->second);
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
    Node& p = *pit->second;
    p.children.erase(child.name);
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
    Node& n = *it->second;
    if (n.parent != 0 || n.nlookup != 0 || n.ino == kRootIno) continue;
    // Children of a freed directory become orphans themselves.
    for (auto& [name, cino] : n.children) {
      auto cit = nodes_.find(cino);
      if (cit == nodes_.end()) continue;
      cit->second->parent = 0;
      stack.push_back(cino);
    }
    if (n.listed) --listed_dirs_;
    nodes_.erase(it);
  }
}

ListingDiff InodeTable::apply_listing(uint64_t dir_ino, std::vector<ListedEntry> entries) {
  ListingDiff diff;
  std::unique_lock lk(mu_);
  auto dit = nodes_.find(dir_ino);
  if (dit == nodes_.end() || dit->second->kind != NodeKind::dir) return diff;
  Node& dir = *dit->second;
  std::string dir_path = path_locked(dir);

  std::map<std::string, ListedEntry*, std::less<>> incoming;
  for (auto& e : entries) {
    if (!valid_entry_name(e.name)) continue;  // the caller logs; never serve such names
    incoming.emplace(e.name, &e);             // duplicates: first wins
  }

  // Remove children that disappeared or changed kind.
  std::vector<uint64_t> gone;
  for (auto& [name, cino] : dir.children) {
    auto in = incoming.find(name);
    Node& c = *nodes_.at(cino);
    if (in == incoming.end() || in->second->kind != c.kind) gone.push_back(cino);
  }
  for (uint64_t cino : gone) {
    Node& c = *nodes_.at(cino);
    diff.removed.push_back(c.name);
    detach_locked(c);
    maybe_free_locked(cino);
  }

  for (auto& [name, e] : incoming) {
    auto cit = dir.children.find(name);
    if (cit != dir.children.end()) {
      Node& c = *nodes_.at(cit->second);
      bool changed = !c.content.same_as(e->content) || c.size != e->size ||
                     c.symlink_target != e->symlink_target;
      c.size = e->size;
      c.mtime_ns = e->mtime_ns;
      c.content = e->content;
      c.symlink_target = e->symlink_target;
      if (changed) diff.changed.push_back(c.ino);
      continue;
    }
    std::string child_path = dir_path.empty() ? name : dir_path + "/" + name;
    auto n = std::make_unique<Node>();
    n->ino = allocate_ino(child_path);
    n->parent = dir_ino;
    n->name = name;
    n->kind = e->kind;
    n->size = e->size;
    n->mtime_ns = e->mtime_ns;
    n->content = e->content;
    n->symlink_target = e->symlink_target;
    if (n->kind == NodeKind::dir) ++dir.subdirs;
    dir.children.emplace(name, n->ino);
    diff.added.push_back(name);
    uint64_t ino = n->ino;
    nodes_.emplace(ino, std::move(n));
  }
  if (!dir.listed) {
    dir.listed = true;
    ++listed_dirs_;
  }
  dir.snap.reset();
  return diff;
}

void InodeTable::add_lookup(uint64_t ino, uint64_t n) {
  std::unique_lock lk(mu_);
  auto it = nodes_.find(ino);
  if (it != nodes_.end()) it->second->nlookup += n;
}

void InodeTable::forget(uint64_t ino, uint64_t n) {
  if (ino == kRootIno) return;  // the kernel never really forgets the root
  std::unique_lock lk(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) {
    HF_LOG_ERROR("inode", "forget of unknown inode {} (n={})", ino, n);
    return;
  }
  Node& node = *it->second;
  if (node.nlookup < n) {
    // The kernel's count and ours disagree: continuing would free nodes the kernel still uses.
    HF_LOG_ERROR("inode", "lookup count underflow on inode {}: have {}, forget {}", ino, node.nlookup, n);
    std::abort();
  }
  node.nlookup -= n;
  if (node.nlookup == 0 && node.parent == 0) maybe_free_locked(ino);
}

std::shared_ptr<const DirSnapshot> InodeTable::snapshot(uint64_t dir_ino) const {
  {
    std::shared_lock lk(mu_);
    auto it = nodes_.find(dir_ino);
    if (it == nodes_.end() || it->second->kind != NodeKind::dir || !it->second->listed) return nullptr;
    if (it->second->snap) return it->second->snap;
  }
  std::unique_lock lk(mu_);
  auto it = nodes_.find(dir_ino);
  if (it == nodes_.end() || it->second->kind != NodeKind::dir || !it->second->listed) return nullptr;
  Node& dir = *it->second;
  if (dir.snap) return dir.snap;
  auto snap = std::make_shared<DirSnapshot>();
  snap->dir_ino = dir.ino;
  snap->parent_ino = dir.parent ? dir.parent : dir.ino;
  snap->entries.reserve(dir.children.size());
  for (auto& [name, cino] : dir.children) {
    snap->entries.push_back(DirSnapshotEntry{name, attr_of(*nodes_.at(cino))});
  }
  dir.snap = snap;
  return snap;
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
