// Tests for common/auth: parsing Authorization headers, constant-time comparison, password
// generation and the lenient base64 decoder behind HTTP Basic.
#include "common/auth.h"

#include <gtest/gtest.h>

#include <optional>
#include <set>
#include <string>

namespace gridexp {
namespace {

// ---------------------------------------------------------------- credential_from_authorization

TEST(CredentialFromAuthorization, BearerGivesTheToken) {
  EXPECT_EQ(credential_from_authorization("Bearer s3cret"), "s3cret");
}

TEST(CredentialFromAuthorization, SchemeIsCaseInsensitive) {
  EXPECT_EQ(credential_from_authorization("bearer s3cret"), "s3cret");
  EXPECT_EQ(credential_from_authorization("BEARER s3cret"), "s3cret");
  EXPECT_EQ(credential_from_authorization("bEaReR s3cret"), "s3cret");
  EXPECT_EQ(credential_from_authorization("basic dXNlcjpwYXNz"), "pass");
  EXPECT_EQ(credential_from_authorization("BASIC dXNlcjpwYXNz"), "pass");
}

TEST(CredentialFromAuthorization, SurroundingWhitespaceIsIgnored) {
  EXPECT_EQ(credential_from_authorization("  Bearer s3cret  "), "s3cret");
  EXPECT_EQ(credential_from_authorization("\tBearer    s3cret\t"), "s3cret");
  EXPECT_EQ(credential_from_authorization(" Basic   dXNlcjpwYXNz \t"), "pass");
}

TEST(CredentialFromAuthorization, TokenIsTakenWholeAndCaseSensitive) {
  EXPECT_EQ(credential_from_authorization("Bearer AbC:dEf=="), "AbC:dEf==");
}

TEST(CredentialFromAuthorization, BearerWithoutTokenIsNothing) {
  EXPECT_EQ(credential_from_authorization("Bearer"), std::nullopt);
  EXPECT_EQ(credential_from_authorization("Bearer "), std::nullopt);
  EXPECT_EQ(credential_from_authorization("Bearer    \t "), std::nullopt);
}

TEST(CredentialFromAuthorization, SchemeMustBeFollowedBySpace) {
  EXPECT_EQ(credential_from_authorization("Bearers3cret"), std::nullopt);
  EXPECT_EQ(credential_from_authorization("BasicdXNlcjpwYXNz"), std::nullopt);
}

TEST(CredentialFromAuthorization, BasicGivesThePasswordPart) {
  // "user:pass"
  EXPECT_EQ(credential_from_authorization("Basic dXNlcjpwYXNz"), "pass");
}

TEST(CredentialFromAuthorization, BasicAcceptsAnyUserName) {
  // "any user:p@ss w0rd"
  EXPECT_EQ(credential_from_authorization("Basic YW55IHVzZXI6cEBzcyB3MHJk"), "p@ss w0rd");
}

TEST(CredentialFromAuthorization, BasicAcceptsAnEmptyUserName) {
  // ":secret"
  EXPECT_EQ(credential_from_authorization("Basic OnNlY3JldA=="), "secret");
}

TEST(CredentialFromAuthorization, BasicPasswordMayContainColons) {
  // "alice:pa:ss:word": the user name ends at the first colon.
  EXPECT_EQ(credential_from_authorization("Basic YWxpY2U6cGE6c3M6d29yZA=="), "pa:ss:word");
}

TEST(CredentialFromAuthorization, BasicWithEmptyPasswordGivesEmptyString) {
  // "user:"
  EXPECT_EQ(credential_from_authorization("Basic dXNlcjo="), "");
}

TEST(CredentialFromAuthorization, BasicWithoutPaddingIsAccepted) {
  EXPECT_EQ(credential_from_authorization("Basic OnNlY3JldA"), "secret");
}

TEST(CredentialFromAuthorization, BasicWithoutColonIsNothing) {
  // "nocolon"
  EXPECT_EQ(credential_from_authorization("Basic bm9jb2xvbg=="), std::nullopt);
}

TEST(CredentialFromAuthorization, BasicWithMalformedBase64IsNothing) {
  EXPECT_EQ(credential_from_authorization("Basic !!!!"), std::nullopt);
  EXPECT_EQ(credential_from_authorization("Basic dXNl cjpwYXNz"), std::nullopt);
  EXPECT_EQ(credential_from_authorization("Basic dXNlcjpwYXNzx"), std::nullopt);
  EXPECT_EQ(credential_from_authorization("Basic dXNl=cjpwYXNz"), std::nullopt);
}

TEST(CredentialFromAuthorization, BasicWithoutCredentialsIsNothing) {
  EXPECT_EQ(credential_from_authorization("Basic"), std::nullopt);
  EXPECT_EQ(credential_from_authorization("Basic "), std::nullopt);
}

TEST(CredentialFromAuthorization, OtherSchemesAreNothing) {
  EXPECT_EQ(credential_from_authorization("Digest username=\"a\", realm=\"b\""), std::nullopt);
  EXPECT_EQ(credential_from_authorization("Token s3cret"), std::nullopt);
  EXPECT_EQ(credential_from_authorization("s3cret"), std::nullopt);
}

TEST(CredentialFromAuthorization, EmptyHeaderIsNothing) {
  EXPECT_EQ(credential_from_authorization(""), std::nullopt);
  EXPECT_EQ(credential_from_authorization("   "), std::nullopt);
}

// ---------------------------------------------------------------- constant_time_equals

TEST(ConstantTimeEquals, EqualStrings) {
  EXPECT_TRUE(constant_time_equals("correct horse", "correct horse"));
  EXPECT_TRUE(constant_time_equals("", ""));
}

TEST(ConstantTimeEquals, DifferentStringsOfEqualLength) {
  EXPECT_FALSE(constant_time_equals("abcdef", "abcdeg"));
  EXPECT_FALSE(constant_time_equals("abcdef", "bbcdef"));
  EXPECT_FALSE(constant_time_equals("abcdef", "ABCDEF"));
}

TEST(ConstantTimeEquals, DifferentLengths) {
  EXPECT_FALSE(constant_time_equals("abc", "abcdefgh"));
  EXPECT_FALSE(constant_time_equals("abcdefgh", "xyz"));
  EXPECT_FALSE(constant_time_equals("", "a"));
  EXPECT_FALSE(constant_time_equals("a", ""));
}

TEST(ConstantTimeEquals, PrefixIsNotEqual) {
  EXPECT_FALSE(constant_time_equals("secret", "secret2"));
  EXPECT_FALSE(constant_time_equals("secret2", "secret"));
}

TEST(ConstantTimeEquals, TrailingNulIsNotEqual) {
  // The shorter input is padded with zero bytes internally; the lengths must still differ.
  EXPECT_FALSE(constant_time_equals(std::string("abc\0", 4), "abc"));
  EXPECT_FALSE(constant_time_equals("abc", std::string("abc\0", 4)));
  EXPECT_TRUE(constant_time_equals(std::string("a\0b", 3), std::string("a\0b", 3)));
}

// ---------------------------------------------------------------- authorization_matches

TEST(AuthorizationMatches, BearerWithThePassword) {
  EXPECT_TRUE(authorization_matches("Bearer s3cret", "s3cret"));
  EXPECT_TRUE(authorization_matches("bearer  s3cret ", "s3cret"));
}

TEST(AuthorizationMatches, BasicWithThePasswordAndAnyUser) {
  EXPECT_TRUE(authorization_matches("Basic dXNlcjpwYXNz", "pass"));    // user:pass
  EXPECT_TRUE(authorization_matches("Basic OnNlY3JldA==", "secret"));  // :secret
  EXPECT_TRUE(authorization_matches("Basic YWxpY2U6cGE6c3M6d29yZA==",  // alice:pa:ss:word
                                    "pa:ss:word"));
}

TEST(AuthorizationMatches, WrongPassword) {
  EXPECT_FALSE(authorization_matches("Bearer s3cret", "other"));
  EXPECT_FALSE(authorization_matches("Bearer s3cre", "s3cret"));
  EXPECT_FALSE(authorization_matches("Bearer s3cret!", "s3cret"));
  EXPECT_FALSE(authorization_matches("Bearer S3CRET", "s3cret"));
  EXPECT_FALSE(authorization_matches("Basic dXNlcjpwYXNz", "user"));
  EXPECT_FALSE(authorization_matches("Basic dXNlcjpwYXNz", "user:pass"));
}

TEST(AuthorizationMatches, NoCredentialNeverMatches) {
  EXPECT_FALSE(authorization_matches("", "s3cret"));
  EXPECT_FALSE(authorization_matches("Token s3cret", "s3cret"));
  EXPECT_FALSE(authorization_matches("s3cret", "s3cret"));
  EXPECT_FALSE(authorization_matches("Basic bm9jb2xvbg==", "nocolon"));
}

TEST(AuthorizationMatches, MissingCredentialDoesNotMatchEmptyPassword) {
  // An absent or malformed header must not pass even against an empty password.
  EXPECT_FALSE(authorization_matches("", ""));
  EXPECT_FALSE(authorization_matches("Bearer ", ""));
  EXPECT_FALSE(authorization_matches("Basic !!!!", ""));
}

TEST(AuthorizationMatches, BasicWithEmptyPasswordDoesNotMatchARealPassword) {
  EXPECT_FALSE(authorization_matches("Basic dXNlcjo=", "s3cret"));  // user:
}

// ---------------------------------------------------------------- generate_password

bool is_alphanumeric(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

TEST(GeneratePassword, Is24AlphanumericCharacters) {
  std::string password = generate_password();
  ASSERT_EQ(password.size(), 24u);
  for (char c : password) EXPECT_TRUE(is_alphanumeric(c)) << "unexpected character " << c;
}

TEST(GeneratePassword, TwoCallsDiffer) { EXPECT_NE(generate_password(), generate_password()); }

TEST(GeneratePassword, UsesTheWholeAlphabet) {
  // 100 passwords hold 2400 characters: missing any of the three classes has probability far
  // below 1e-100, so this fails only if the alphabet is wrong.
  std::set<std::string> passwords;
  bool upper = false, lower = false, digit = false;
  for (int i = 0; i < 100; ++i) {
    std::string password = generate_password();
    ASSERT_EQ(password.size(), 24u);
    for (char c : password) {
      ASSERT_TRUE(is_alphanumeric(c)) << "unexpected character " << c;
      upper |= c >= 'A' && c <= 'Z';
      lower |= c >= 'a' && c <= 'z';
      digit |= c >= '0' && c <= '9';
    }
    passwords.insert(password);
  }
  EXPECT_TRUE(upper);
  EXPECT_TRUE(lower);
  EXPECT_TRUE(digit);
  EXPECT_EQ(passwords.size(), 100u);
}

// ---------------------------------------------------------------- base64_decode

TEST(Base64Decode, EmptyInput) { EXPECT_EQ(base64_decode(""), ""); }

TEST(Base64Decode, WithPadding) {
  EXPECT_EQ(base64_decode("YQ=="), "a");
  EXPECT_EQ(base64_decode("YWI="), "ab");
  EXPECT_EQ(base64_decode("YWJj"), "abc");
  EXPECT_EQ(base64_decode("dXNlcjpwYXNz"), "user:pass");
}

TEST(Base64Decode, WithoutPadding) {
  EXPECT_EQ(base64_decode("YQ"), "a");
  EXPECT_EQ(base64_decode("YWI"), "ab");
  EXPECT_EQ(base64_decode("OnNlY3JldA"), ":secret");
}

TEST(Base64Decode, StandardAlphabetHighCharacters) {
  EXPECT_EQ(base64_decode("+/8="), std::string("\xfb\xff"));
  EXPECT_EQ(base64_decode("++++"), std::string("\xfb\xef\xbe"));
}

TEST(Base64Decode, UrlSafeAlphabet) {
  EXPECT_EQ(base64_decode("-_8="), std::string("\xfb\xff"));
  EXPECT_EQ(base64_decode("----"), std::string("\xfb\xef\xbe"));
}

TEST(Base64Decode, BinaryOutputKeepsNulBytes) {
  EXPECT_EQ(base64_decode("AAA="), std::string("\0\0", 2));
}

TEST(Base64Decode, InvalidCharacters) {
  EXPECT_EQ(base64_decode("YW*j"), std::nullopt);
  EXPECT_EQ(base64_decode("YW j"), std::nullopt);
  EXPECT_EQ(base64_decode("YWJj\n"), std::nullopt);
  EXPECT_EQ(base64_decode("Y=Jj"), std::nullopt);  // padding in the middle
}

TEST(Base64Decode, LoneTrailingCharacterIsInvalid) {
  EXPECT_EQ(base64_decode("Y"), std::nullopt);
  EXPECT_EQ(base64_decode("Y==="), std::nullopt);
  EXPECT_EQ(base64_decode("YWJjZ"), std::nullopt);
}

}  // namespace
}  // namespace gridexp
