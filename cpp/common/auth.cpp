#include "common/auth.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <array>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace gridexp {
namespace {

bool starts_with_ignore_case(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

}  // namespace

std::optional<std::string> base64_decode(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    int value = base64_value(c);
    if (value < 0) return std::nullopt;
    buffer = (buffer << 6) | static_cast<std::uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  if (bits >= 6) return std::nullopt;  // a lone trailing character encodes no byte
  return out;
}

std::optional<std::string> credential_from_authorization(std::string_view header_value) {
  std::string_view value = trim(header_value);
  if (starts_with_ignore_case(value, "Bearer ")) {
    std::string_view token = trim(value.substr(7));
    if (token.empty()) return std::nullopt;
    return std::string(token);
  }
  if (starts_with_ignore_case(value, "Basic ")) {
    std::optional<std::string> decoded = base64_decode(trim(value.substr(6)));
    if (!decoded) return std::nullopt;
    std::size_t colon = decoded->find(':');
    if (colon == std::string::npos) return std::nullopt;
    return decoded->substr(colon + 1);
  }
  return std::nullopt;
}

bool constant_time_equals(std::string_view a, std::string_view b) {
  // Compare the full length of the longer input so the time reveals only the lengths.
  std::size_t length = a.size() > b.size() ? a.size() : b.size();
  unsigned char difference = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < length; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    difference |= static_cast<unsigned char>(x ^ y);
  }
  return difference == 0;
}

bool authorization_matches(std::string_view header_value, std::string_view password) {
  std::optional<std::string> credential = credential_from_authorization(header_value);
  bool matches = constant_time_equals(credential.value_or(std::string()), password);
  if (credential) OPENSSL_cleanse(credential->data(), credential->size());
  return credential.has_value() && matches;
}

std::string generate_password() {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string password;
  while (password.size() < 24) {
    std::array<unsigned char, 32> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
      std::fputs("gridexp: the system random number generator failed\n", stderr);
      std::abort();
    }
    for (unsigned char byte : bytes) {
      // 248 = 4 * 62: rejecting larger bytes keeps every character equally likely.
      if (byte < 248 && password.size() < 24) password.push_back(kAlphabet[byte % 62]);
    }
  }
  return password;
}

Result<std::string> read_password_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return Status::invalid_argument("cannot read password file " + path.string());
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
    line.pop_back();
  }
  if (line.empty()) return Status::invalid_argument("password file " + path.string() + " is empty");
  return line;
}

}  // namespace gridexp
