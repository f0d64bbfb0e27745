// opendir, readdir, readdirplus, releasedir.
#include <vector>

#include "fs/fuse/context.h"
#include "fs/fuse/ops.h"

namespace hf::fs::fuse {

static void reply_open_dir(fuse_req_t req, struct fuse_file_info* fi, Result<OpenOut> r) {
  if (!r.ok()) {
    reply_error(req, r.error(), "opendir");
    return;
  }
  fi->fh = r->fh;
  fi->cache_readdir = r->cache_dir;
  fi->keep_cache = r->keep_cache;
  if (fuse_reply_open(req, fi) != 0) ctx(req).vfs->releasedir(r->fh);
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  FuseContext& c = ctx(req);
  if (auto r = c.vfs->opendir_fast(ino)) {
    reply_open_dir(req, fi, std::move(*r));
    return;
  }
  auto cancel = make_cancel();
  // `fi` is only valid during this call: copy what the reply needs.
  struct fuse_file_info saved = *fi;
  spawn_reply<OpenOut>(req, cancel, c.vfs->opendir(ino, cancel), "opendir",
                       [saved](fuse_req_t r, Result<OpenOut> res) mutable { reply_open_dir(r, &saved, std::move(res)); });
}

static void do_readdir(fuse_req_t req, size_t size, off_t off, struct fuse_file_info* fi, bool plus) {
  FuseContext& c = ctx(req);
  auto snap = c.vfs->dir_snapshot(fi->fh);
  if (!snap) {
    reply_error(req, Error(Errc::bad_handle, "unknown directory handle"), "readdir");
    return;
  }
  std::vector<char> buf(size);
  size_t used = 0;
  size_t total = snap->entries.size() + 2;
  for (size_t idx = static_cast<size_t>(off); idx < total; ++idx) {
    const char* name;
    Attr a;
    bool real = idx >= 2;
    if (idx == 0) {
      name = ".";
      a.ino = snap->dir_ino;
      a.kind = NodeKind::dir;
    } else if (idx == 1) {
      name = "..";
      a.ino = snap->parent_ino;
      a.kind = NodeKind::dir;
    } else {
      const DirSnapshotEntry& e = snap->entries[idx - 2];
      name = e.name.c_str();
      a = e.attr;
    }
    size_t n;
    if (plus) {
      struct fuse_entry_param p;
      // Every entry with a nonzero ino hands the kernel a reference: count it first. The entry
      // names the node that has this name *now*, with its current attributes: the snapshot may
      // predate a rename, unlink or remote change (an old inode for the name makes the kernel
      // open the wrong file by it; an old size is cached). A name gone since, or now of another
      // kind, goes out without a reference (ino 0: the kernel just lists the name).
      std::optional<Attr> cur = real ? c.vfs->add_lookup_child(snap->dir_ino, name) : std::nullopt;
      bool counted = cur.has_value();
      if (counted && cur->kind != a.kind) {
        c.vfs->forget(cur->ino, 1);
        counted = false;
      }
      if (counted) a = *cur;
      EntryOut eo = c.vfs->entry_for(a);
      fill_entry(eo, &p);
      if (!counted) p.ino = 0;  // (also "." and "..": the kernel does not instantiate them)
      n = fuse_add_direntry_plus(req, buf.data() + used, size - used, name, &p, static_cast<off_t>(idx + 1));
      if (n > size - used) {
        if (counted) c.vfs->forget(a.ino, 1);  // did not fit: not sent
        break;
      }
    } else {
      struct stat st;
      fill_stat(a, &st);
      n = fuse_add_direntry(req, buf.data() + used, size - used, name, &st, static_cast<off_t>(idx + 1));
      if (n > size - used) break;
    }
    used += n;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void op_readdir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, struct fuse_file_info* fi) {
  do_readdir(req, size, off, fi, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t, size_t size, off_t off, struct fuse_file_info* fi) {
  do_readdir(req, size, off, fi, true);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
  ctx(req).vfs->releasedir(fi->fh);
  fuse_reply_err(req, 0);
}

}  // namespace hf::fs::fuse
