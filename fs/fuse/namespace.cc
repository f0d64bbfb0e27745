// create, mkdir, symlink, unlink, rmdir, rename, link (bucket mounts).
#include <cerrno>

#include "fs/fuse/context.h"
#include "fs/fuse/ops.h"

namespace hf::fs::fuse {

namespace {

void reply_new_entry(fuse_req_t req, Result<EntryOut> r, const char* op) {
  if (!r.ok()) {
    reply_error(req, r.error(), op);
    return;
  }
  struct fuse_entry_param p;
  fill_entry(*r, &p);
  if (fuse_reply_entry(req, &p) != 0) ctx(req).vfs->forget(p.ino, 1);
}

void reply_status(fuse_req_t req, Status st, const char* op) {
  if (!st.ok()) {
    reply_error(req, st.error(), op);
    return;
  }
  fuse_reply_err(req, 0);
}

// Status-returning tasks adapted to spawn_reply (which carries a Result<T>).
Task<Result<bool>> as_result(Task<Status> t) {
  Status st = co_await std::move(t);
  if (!st.ok()) co_return st.error();
  co_return true;
}

}  // namespace

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, struct fuse_file_info* fi) {
  FuseContext& c = ctx(req);
  auto r = c.vfs->create(parent, name, mode, fi->flags);
  if (!r.ok()) {
    reply_error(req, r.error(), "create");
    return;
  }
  struct fuse_entry_param p;
  fill_entry(r->first, &p);
  fi->fh = r->second.fh;
  fi->keep_cache = 0;
  if (fuse_reply_create(req, &p, fi) != 0) {
    c.vfs->forget(p.ino, 1);
    c.vfs->release(fi->fh);
  }
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  reply_new_entry(req, ctx(req).vfs->mkdir(parent, name, mode), "mkdir");
}

void op_symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  reply_new_entry(req, ctx(req).vfs->symlink(link, parent, name), "symlink");
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto cancel = make_cancel();
  spawn_reply<bool>(req, cancel, as_result(ctx(req).vfs->unlink(parent, name, cancel)), "unlink",
                    [](fuse_req_t r, Result<bool> res) {
                      reply_status(r, res.ok() ? Status{} : Status(res.error()), "unlink");
                    });
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto cancel = make_cancel();
  spawn_reply<bool>(req, cancel, as_result(ctx(req).vfs->rmdir(parent, name, cancel)), "rmdir",
                    [](fuse_req_t r, Result<bool> res) {
                      reply_status(r, res.ok() ? Status{} : Status(res.error()), "rmdir");
                    });
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
               unsigned int flags) {
  if (flags & ~static_cast<unsigned>(RENAME_NOREPLACE)) {
    reply_error(req, Error(Errc::invalid_argument, "RENAME_EXCHANGE/WHITEOUT are not supported"), "rename");
    return;
  }
  auto cancel = make_cancel();
  spawn_reply<bool>(
      req, cancel,
      as_result(ctx(req).vfs->rename(parent, name, newparent, newname, (flags & RENAME_NOREPLACE) != 0, cancel)),
      "rename",
      [](fuse_req_t r, Result<bool> res) { reply_status(r, res.ok() ? Status{} : Status(res.error()), "rename"); });
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  auto cancel = make_cancel();
  spawn_reply<EntryOut>(req, cancel, ctx(req).vfs->link(ino, newparent, newname, cancel), "link",
                        [](fuse_req_t r, Result<EntryOut> res) { reply_new_entry(r, std::move(res), "link"); });
}

}  // namespace hf::fs::fuse
