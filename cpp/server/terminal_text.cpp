#include "server/terminal_text.h"

#include <cstdint>
#include <cstdio>

namespace gridexp {
namespace {

void append_byte_escape(std::string& out, unsigned char byte) {
  char escaped[8];
  std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
  out += escaped;
}

void append_code_point_escape(std::string& out, std::uint32_t code_point) {
  char escaped[16];
  std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(code_point));
  out += escaped;
}

// The length of the valid UTF-8 sequence starting at text[at] and its code point, or 0.
std::size_t decode_utf8(std::string_view text, std::size_t at, std::uint32_t& code_point) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char lead = byte(at);
  std::size_t length = 0;
  std::uint32_t minimum = 0;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2, minimum = 0x80, code_point = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3, minimum = 0x800, code_point = lead & 0x0f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4, minimum = 0x10000, code_point = lead & 0x07;
  } else {
    return 0;
  }
  if (at + length > text.size()) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(at + i) & 0xc0) != 0x80) return 0;
    code_point = (code_point << 6) | (byte(at + i) & 0x3f);
  }
  // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
  if (code_point < minimum || (code_point >= 0xd800 && code_point <= 0xdfff) ||
      code_point > 0x10ffff) {
    return 0;
  }
  return length;
}

// Characters that change how a terminal shows what follows them.
bool is_invisible_control(std::uint32_t code_point) {
  return (code_point >= 0x80 && code_point <= 0x9f) ||      // C1 controls (0x9b is CSI)
         (code_point >= 0x202a && code_point <= 0x202e) ||  // bidirectional embeddings
         (code_point >= 0x2066 && code_point <= 0x2069);    // bidirectional isolates
}

}  // namespace

std::string terminal_safe(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t at = 0;
  while (at < text.size()) {
    auto byte = static_cast<unsigned char>(text[at]);
    if (byte < 0x80) {
      if (byte == '\t') {
        out += "\\t";
      } else if (byte == '\n') {
        out += "\\n";
      } else if (byte == '\r') {
        out += "\\r";
      } else if (byte < 0x20 || byte == 0x7f) {
        append_byte_escape(out, byte);
      } else {
        out += static_cast<char>(byte);
      }
      ++at;
      continue;
    }
    std::uint32_t code_point = 0;
    std::size_t length = decode_utf8(text, at, code_point);
    if (length == 0) {
      append_byte_escape(out, byte);
      ++at;
    } else if (is_invisible_control(code_point)) {
      append_code_point_escape(out, code_point);
      at += length;
    } else {
      out.append(text.substr(at, length));
      at += length;
    }
  }
  return out;
}

}  // namespace gridexp
