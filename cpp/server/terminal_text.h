// terminal_safe: text from a config file or a command line, made safe to print on a terminal.
//
// Start-up error messages quote the operator's files (keys, values, paths); a crafted file
// could otherwise put escape sequences on the operator's screen (move the cursor, retitle
// the window, hide text). Control characters, bidirectional overrides and invalid UTF-8
// become visible escapes; everything else, other UTF-8 included, is kept as it is.
// A pure function; safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace gridexp {

// C0 controls and DEL as \xNN (tab, newline and carriage return as \t, \n, \r), C1
// controls and the bidirectional formatting characters as \uNNNN, and each byte that is not
// part of valid UTF-8 as \xNN. Idempotent: its output contains nothing it would escape.
std::string terminal_safe(std::string_view text);

}  // namespace gridexp
