// Text the way Rust prints it, for messages that Firecracker tools match:
// `{:?}` of a string, `{}` of an f64 as serde_json writes it in errors, and
// std::io::Error's "<strerror> (os error N)".
#pragma once

#include <string>
#include <string_view>

namespace ember::vmm {

// Rust's `format!("{:?}", s)`: quoted, with \" \\ \n \r \t \0 and \u{..}
// escapes for control characters.
std::string rust_debug_str(std::string_view s);
// serde_json's float text in error messages (shortest round-trip digits,
// "1.5", "100.0", "1e16", "1.8446744073709552e19").
std::string rust_float(double value);
// Display of a Rust std::io::Error made from errno `err`:
// "No such file or directory (os error 2)".
std::string rust_io_error(int err);
bool is_valid_utf8(std::string_view s);

}  // namespace ember::vmm
