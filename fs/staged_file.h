// Local staging of a file being written (bucket mounts).
//
// A staged file is the logical content "base content with local changes applied": `base` is
// the committed remote content the file started from (nothing of it is downloaded up front),
// and a sparse local staging file holds every byte written since. `present()` says which byte
// ranges the staging file is authoritative for; everything else still comes from `base`.
// Invariant: every byte at or after base_limit() (the lowest truncation point, or the base
// size) is present, so reads past the base never need the network.
//
// Thread-safety: all members are safe to call concurrently (one internal mutex); pread/pwrite
// on the staging fd happen outside it. The staging file is deleted with the object unless
// keep_on_disk(true) (the write journal then owns it).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "fs/node.h"
#include "fs/range_set.h"

namespace hf::fs {

class StagedFile {
 public:
  // Creates a new staging file in `dir`. `truncate` (O_TRUNC / new file) drops the base.
  static Result<std::shared_ptr<StagedFile>> create(const std::string& dir, Content base, uint64_t base_size,
                                                    bool truncate);
  // Reopens a staging file recorded by the write journal.
  static Result<std::shared_ptr<StagedFile>> reopen(const std::string& path, Content base, uint64_t base_size,
                                                    uint64_t base_limit, uint64_t size, RangeSet present);
  ~StagedFile();

  Status write(uint64_t off, std::span<const uint8_t> data);
  Status truncate(uint64_t size);
  // Reads staged bytes (zero-filled where the sparse staging file has holes).
  Status pread(uint64_t off, std::span<uint8_t> out) const;
  Status sync() const;  // fsync of the staging file

  uint64_t size() const;
  uint64_t generation() const;  // bumped by every change
  const Content& base() const { return base_; }
  uint64_t base_size() const { return base_size_; }
  uint64_t base_limit() const;
  RangeSet present() const;
  // Pieces of [off, off+len) clipped to size(): staged (inside) or from the base (outside).
  std::vector<RangeSet::Piece> plan(uint64_t off, uint64_t len) const;
  bool touches_staged(uint64_t off, uint64_t len) const;

  const std::string& path() const { return path_; }
  // This file's bytes as a node's content (Source::local, keyed by the staging path): what a
  // node that can no longer be committed holds (see InodeTable::set_written).
  const Content& content() const { return content_; }
  void keep_on_disk(bool keep) { keep_ = keep; }

 private:
  StagedFile() = default;
  int fd_ = -1;
  std::string path_;
  Content base_;
  Content content_;
  uint64_t base_size_ = 0;
  bool keep_ = false;
  mutable std::mutex mu_;
  uint64_t size_ = 0;
  uint64_t base_limit_ = 0;
  uint64_t generation_ = 0;
  RangeSet present_;
};

}  // namespace hf::fs
