// glibc malloc settings for the mount daemon, applied by re-executing it once at start.
//
// Why: a cold read keeps a working set of chunk buffers (memory tier, disk-write queue, segments
// in flight: about 250 MiB) that glibc first touches 4 KiB at a time and, whenever an arena's
// top is trimmed, hands back and touches again. On the 2-vCPU VMs we measure on a page fault
// costs about 15 us (nested paging): a cold 1 GiB read took ~60,000 faults and 3.1 s of daemon
// CPU. Transparent huge pages for the heap (glibc.malloc.hugetlb=1: madvise, so it works with
// the default THP mode "madvise") and a 64 MiB top pad (arena heaps are not shrunk below it)
// take that to under 1,000 faults and 1.2-1.3 s: 460 -> 860 MB/s. Two arenas: each arena's
// padded top is backed by huge pages as it grows, which with glibc's default 8 x cores arenas
// cost 20 MiB of RSS after a 1M-entry walk (0 with two), at no measured cost in throughput.
// Free heap pages are still returned by the mount's periodic malloc_trim.
//
// glibc reads tunables only when a process starts, hence the re-exec (same pid, same argv).
// A GLIBC_TUNABLES already in the environment is the user's choice and is left alone (set it
// empty to opt out). Sanitizers and valgrind replace malloc and ignore the tunables; under
// valgrind set GLIBC_TUNABLES (even empty), or the re-exec leaves valgrind behind.
#pragma once

namespace hf::cmd {

inline constexpr const char* kMallocTunables = "glibc.malloc.hugetlb=1:glibc.malloc.top_pad=67108864:glibc.malloc.arena_max=2";
// Set in the re-executed process only; removed (with GLIBC_TUNABLES) from its environment.
inline constexpr const char* kMallocTunedMarker = "HF_MOUNT_MALLOC_TUNED";

// Call first in main(), before any thread exists. Returns if there is nothing to do (already
// re-executed, or the user set GLIBC_TUNABLES) or if the exec failed (then the process runs
// with glibc's defaults); otherwise does not return.
void reexec_with_malloc_tunables(char** argv);

}  // namespace hf::cmd
