// Small string helpers shared by every module. Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace hf {

std::string to_lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);
std::string_view trim(std::string_view s);
std::vector<std::string_view> split(std::string_view s, char sep);

// Decimal parsing without exceptions; rejects signs, spaces, trailing garbage and overflow.
std::optional<uint64_t> parse_u64(std::string_view s);
std::optional<int64_t> parse_i64(std::string_view s);

// "10G", "512M", "4k", "1048576", "1.5G": binary multiples (K=1024). nullopt on bad input.
std::optional<uint64_t> parse_size(std::string_view s);
// 1536 -> "1.5 KiB"
std::string format_size(uint64_t bytes);

// Lowercase hex of raw bytes / decode (nullopt on odd length or non-hex).
std::string hex_encode(const void* data, size_t n);
std::optional<std::vector<uint8_t>> hex_decode(std::string_view hex);

// Percent-encoding for URLs. `encode_path` keeps '/' and RFC 3986 unreserved characters and
// encodes everything else (including '#', '?', '%', space, controls, non-ASCII bytes);
// `encode_component` also encodes '/'.
std::string url_encode_path(std::string_view s);
std::string url_encode_component(std::string_view s);
// Decodes %XX and (if plus_as_space) '+'. Fails on malformed escapes.
Result<std::string> url_decode(std::string_view s, bool plus_as_space = false);

// Parses "a=1&b=2&b=3" into pairs, decoding keys and values ('+' = space).
Result<std::vector<std::pair<std::string, std::string>>> parse_query(std::string_view q);

}  // namespace hf
