// UTF-8 validity (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF). Text that
// ends up in JSON (task keys, column names) must be UTF-8; lrsmeta refuses other text when it is
// read rather than failing when a model is written.
#pragma once

#include <cstddef>
#include <string>

namespace lrsmeta::core {

// The byte offset of the first byte that does not start a valid UTF-8 sequence, or npos.
inline std::size_t utf8_error_offset(const std::string& text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;  // the allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) length = 2;
    else if (c == 0xE0) length = 3, low = 0xA0;
    else if (c == 0xED) length = 3, high = 0x9F;  // no surrogates
    else if (c >= 0xE1 && c <= 0xEF) length = 3;
    else if (c == 0xF0) length = 4, low = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) length = 4;
    else if (c == 0xF4) length = 4, high = 0x8F;  // at most U+10FFFF
    else return i;
    if (i + length > n || s[i + 1] < low || s[i + 1] > high) return i;
    for (std::size_t j = 2; j < length; ++j)
      if (s[i + j] < 0x80 || s[i + j] > 0xBF) return i;
    i += length;
  }
  return std::string::npos;
}

}  // namespace lrsmeta::core
