// `hf-mount start` argument translation: the incumbent hf-mount's flags (see `hf-mount start
// --help`) and this project's own mount options become one hf-mount-fuse command line. Pure:
// no I/O, so every flag has a unit test.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/secret.h"

namespace hf::cmd {

struct StartPlan {
  std::string source;                // for hf-mount-fuse: hf://[datasets/|spaces/|buckets/]...
  std::string mountpoint;            // absolute (lexically normalized; not yet realpath'd)
  std::vector<std::string> options;  // hf-mount-fuse -o items, unescaped, paths made absolute
  // Passed through the environment, never argv (argv is world-readable in /proc).
  Secret hf_token;
  std::vector<std::string> notes;    // one line per accepted flag that has no effect here
  bool foreground = false;
  bool debug = false;
  std::string log_file;              // --log-file (absolute); empty: the caller's default

  // hf-mount-fuse's arguments (after argv[0]): SOURCE MOUNTPOINT [-o a,b\,c] [-f] [-d].
  std::vector<std::string> fuse_args() const;
};

// `args` follow "start"; `cwd` resolves relative paths. Errors: invalid_argument with a
// one-line message naming the offending flag; unsupported for --overlay.
Result<StartPlan> plan_start(const std::vector<std::string>& args, const std::string& cwd);

// Joins -o items with ',' escaping ',' and '\' inside items (libfuse convention, undone by
// fs::parse_mount_args).
std::string join_mount_options(const std::vector<std::string>& items);

std::string start_usage();

}  // namespace hf::cmd
