#pragma once

#include <cstddef>
#include <string>

namespace ember::shim {

// The last `max_bytes` of a file, starting at a line boundary; "" when the
// file cannot be read.
std::string file_tail(const std::string& path, size_t max_bytes);

}  // namespace ember::shim
