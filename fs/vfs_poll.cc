// Vfs: following remote changes (a branch that moves, a bucket written by others).
//
// The poller asks the Hub for the view's current revision (one cheap request). When it moved,
// every directory the mount has listed is relisted at the new revision, the tree is updated
// (local changes win: InodeTable keeps `local` nodes), and the kernel is told what changed:
// names that appeared or disappeared (their dentries, including cached negative ones), files
// whose content changed (pages, or only attributes while the file is open: an open file keeps
// reading the bytes it opened, and invalidating pages under an open file is what deadlocked
// the incumbent), and directories whose entries changed (their cached readdir pages).
// A directory that changed locally while its listing was in flight (our own commit, a create or
// rename) is not updated from that possibly older listing; it is relisted at the next poll.
#include <utility>  // before asio

#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <unordered_set>

#include "base/log.h"
#include "base/sleep.h"
#include "fs/vfs.h"

namespace hf::fs {

namespace net = boost::asio;

void Vfs::set_invalidator(Invalidator inv) {
  std::lock_guard lk(mu_);
  invalidator_ = std::move(inv);
}

Task<Result<bool>> Vfs::poll_once(CancelPtr cancel) {
  stats_.polls.fetch_add(1, std::memory_order_relaxed);
  auto probe = co_await remote_.probe_revision(cancel);
  if (!probe.ok()) co_return std::move(probe).error();
  std::string old_rev = revision();
  // A relisting skipped last time (local changes during it) is redone even without a new change.
  bool pending = relist_pending_.exchange(false);
  if ((*probe == old_rev || probe->empty()) && !pending) co_return false;
  if (probe->empty()) *probe = old_rev;
  if (*probe != old_rev) HF_LOG_INFO("poll", "{} moved: {} -> {}", cfg_.source, old_rev, *probe);
  remote_.set_revision(*probe);
  set_revision(*probe);
  stats_.revision_changes.fetch_add(1, std::memory_order_relaxed);

  std::unordered_set<uint64_t> open_inos;
  {
    std::lock_guard lk(mu_);
    for (auto& [fh, h] : files_) open_inos.insert(h->ino);
  }
  std::vector<Invalidation> inv;
  for (uint64_t dir : table_.listed_directories()) {
    auto path = table_.path(dir);
    if (!path) continue;
    // Local changes made while this listing is in flight win over it (apply_listing).
    uint64_t since = table_.epoch();
    std::optional<std::vector<ListedEntry>> entries;
    if (meta_) entries = meta_->get_listing(*probe, *path);
    if (!entries) {
      auto r = co_await remote_.list_dir(*probe, *path, cancel);
      if (!r.ok()) {
        // A directory that vanished disappears with its parent's relisting; other failures keep
        // the old state until the next poll.
        if (r.code() != Errc::entry_not_found) {
          HF_LOG_WARN("poll", "relisting '{}' failed: {}", path->empty() ? "/" : *path, r.error().describe());
        }
        continue;
      }
      entries = convert_listing(std::move(*r), *path);
      if (meta_) (void)meta_->put_listing(*probe, *path, *entries);
    } else {
      uint32_t rev_index;
      {
        std::lock_guard lk(mu_);
        rev_index = static_cast<uint32_t>(revs_.size() - 1);
      }
      for (auto& e : *entries) e.content.rev = rev_index;
    }
    ListingDiff diff;
    {
      // Under mu_ with the stale_attrs_ marks below, so open() sees both or neither.
      std::lock_guard lk(mu_);
      diff = table_.apply_listing(dir, std::move(*entries), since);
      stale_attrs_.insert(diff.changed.begin(), diff.changed.end());
    }
    if (diff.skipped) {
      HF_LOG_DEBUG("poll", "relisting '{}' deferred: it changed locally meanwhile", path->empty() ? "/" : *path);
      relist_pending_ = true;
      continue;
    }
    for (auto& n : diff.added) inv.push_back({Invalidation::Kind::entry, dir, n});
    for (auto& n : diff.removed) inv.push_back({Invalidation::Kind::entry, dir, n});
    for (uint64_t ino : diff.changed) {
      inv.push_back({open_inos.count(ino) ? Invalidation::Kind::inode_attrs : Invalidation::Kind::inode_pages, ino, {}});
    }
    if (!diff.added.empty() || !diff.removed.empty()) inv.push_back({Invalidation::Kind::inode_pages, dir, {}});
  }
  Invalidator sink;
  {
    std::lock_guard lk(mu_);
    sink = invalidator_;
  }
  stats_.invalidations.fetch_add(inv.size(), std::memory_order_relaxed);
  if (sink && !inv.empty()) sink(std::move(inv));
  co_return true;
}

Task<void> Vfs::poll_loop(std::chrono::seconds interval) {
  if (interval.count() <= 0) co_return;
  int backoff = 1;
  auto life = life_;
  for (;;) {
    bool slept = co_await sleep_for(interval * backoff, life);
    if (!slept) co_return;
    auto r = co_await poll_once(life);
    if (life->cancelled()) co_return;
    if (r.ok()) {
      backoff = 1;
      continue;
    }
    // Unauthorized (token rotated away) backs off far; other failures a little.
    int cap = r.code() == Errc::unauthorized ? 64 : 8;
    backoff = std::min(backoff * 2, cap);
    HF_LOG_WARN("poll", "checking {} for changes failed: {} (next try in {} s)", cfg_.source, r.error().describe(),
                interval.count() * backoff);
  }
}

}  // namespace hf::fs
