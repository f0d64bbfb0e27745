// statfs.
#include <sys/statvfs.h>

#include <cstring>

#include "fs/fuse/context.h"
#include "fs/fuse/ops.h"

namespace hf::fs::fuse {

void op_statfs(fuse_req_t req, fuse_ino_t) {
  StatfsOut s = ctx(req).vfs->statfs();
  struct statvfs st;
  std::memset(&st, 0, sizeof(st));
  st.f_bsize = s.block_size;
  st.f_frsize = s.block_size;
  st.f_blocks = s.blocks;
  st.f_bfree = s.blocks_free;
  st.f_bavail = s.blocks_avail;
  st.f_files = s.files;
  st.f_ffree = s.files_free;
  st.f_favail = s.files_free;
  st.f_namemax = s.name_max;
  fuse_reply_statfs(req, &st);
}

}  // namespace hf::fs::fuse
