// Bounded parsers for Hub API JSON bodies (hub-api.md §2-§7, §10). Pure functions,
// thread-safe, safe on untrusted input: documents larger than `max_bytes` or nested deeper
// than 64 levels, malformed JSON and wrong shapes are Errc::protocol with a clear message.
// Names that are not valid UTF-8 (raw bytes, or lone "\udcXX" escapes) are passed through as
// the original bytes: the filesystem decides what to do with them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "net/hub/types.h"

namespace hf::hub {

inline constexpr size_t kMaxJsonBytes = 64u << 20;

Result<RepoInfo> parse_repo_info(std::string_view json, size_t max_bytes = kMaxJsonBytes);
// A tree or paths-info page: an array of entries. Entries of unknown type are skipped.
Result<std::vector<TreeEntry>> parse_tree_entries(std::string_view json, size_t max_bytes = kMaxJsonBytes);
Result<BucketInfo> parse_bucket_info(std::string_view json, size_t max_bytes = kMaxJsonBytes);
Result<XetToken> parse_xet_token(std::string_view json, size_t max_bytes = 1u << 20);
Result<BatchResult> parse_batch_result(std::string_view json, size_t max_bytes = kMaxJsonBytes);
// Best-effort one-line message from an error body ({"error": "..."}, {"error": [...]},
// {"errors": [{"message"}]}, {"error","error_description"}); empty when none. At most 300 bytes,
// control characters replaced.
std::string parse_error_message(std::string_view body);

// Rewrites invalid UTF-8 (raw bytes and "\udc80".."\udcff" escapes inside strings) to
// U+10FF80..U+10FFFF so a validating parser accepts the document; restore_bytes() undoes it on
// extracted strings. Exposed for tests.
std::string escape_invalid_utf8(std::string_view json);
void restore_bytes(std::string& s);

}  // namespace hf::hub
