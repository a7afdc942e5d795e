#include "clams/vram/request_class.h"

#include <gtest/gtest.h>

#include <string>

namespace clams::vram {
namespace {

// RFC 1321, appendix A.5 ("test suite").
TEST(Md5HexTest, Rfc1321TestSuite) {
  EXPECT_EQ(Md5Hex(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(Md5Hex("a"), "0cc175b9c0f1b6a831c399e269772661");
  EXPECT_EQ(Md5Hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(Md5Hex("message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
  EXPECT_EQ(Md5Hex("abcdefghijklmnopqrstuvwxyz"), "c3fcd3d76192e4007dfb496cca67e13b");
  EXPECT_EQ(Md5Hex("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"),
            "d174ab98d277d9f5a5611c2c9f419d9f");
  EXPECT_EQ(Md5Hex("1234567890123456789012345678901234567890123456789012345678901234567890"
                   "1234567890"),
            "57edf4a22be3c955ac49da2e2107b67a");
}

// Lengths around the padding boundaries (56 and 64 bytes mod 64); expected
// values from Python's hashlib.md5.
TEST(Md5HexTest, PaddingBoundaries) {
  EXPECT_EQ(Md5Hex(std::string(55, 'x')), "04364420e25c512fd958a70738aa8f72");
  EXPECT_EQ(Md5Hex(std::string(56, 'x')), "668a72d5ba17f08e62dabcafad6db14b");
  EXPECT_EQ(Md5Hex(std::string(57, 'x')), "693037871c4a9d3d8685018905cb530a");
  EXPECT_EQ(Md5Hex(std::string(63, 'x')), "7dc2ca208106a2f703567bdff99d8981");
  EXPECT_EQ(Md5Hex(std::string(64, 'x')), "c1bb4f81d892b2d57947682aeb252456");
  EXPECT_EQ(Md5Hex(std::string(65, 'x')), "1bc932052302d074bdec39795fe00cf6");
  EXPECT_EQ(Md5Hex(std::string(119, 'x')), "ab347a5f68c8a443cfcddc633f12c24f");
  EXPECT_EQ(Md5Hex(std::string(120, 'x')), "fb98667f98096de92620b64f46e1c5b5");
  EXPECT_EQ(Md5Hex(std::string(128, 'x')), "d69cb61a6ee87200676eb0d4b90edbcb");
}

TEST(Md5HexTest, LongAndBinaryInput) {
  EXPECT_EQ(Md5Hex(std::string(1000000, 'a')), "7707d6ae4e027c70eea2a935c2296f21");
  EXPECT_EQ(Md5Hex(std::string("a\0b\xff", 4)), "0dd4df5b5be53b9566c53387ec9a7bac");
}

TEST(RequestClassTest, MakeHashesAppVersionAndParameters) {
  RequestClass c =
      RequestClass::Make("http://apps.clams.ai/whisper-wrapper/v10", "v10", R"({"model":"large"})");
  EXPECT_EQ(c.app_id, "http://apps.clams.ai/whisper-wrapper/v10");
  EXPECT_EQ(c.app_version, "v10");
  EXPECT_EQ(c.parameters_json, R"({"model":"large"})");
  // hashlib.md5(b'http://apps.clams.ai/whisper-wrapper/v10\nv10\n{"model":"large"}')
  EXPECT_EQ(c.key, "a517764fcece2b48ef0d5adac00441fc");
  EXPECT_EQ(c.key, Md5Hex("http://apps.clams.ai/whisper-wrapper/v10\nv10\n{\"model\":\"large\"}"));
}

TEST(RequestClassTest, EveryPartChangesTheKey) {
  const std::string base = RequestClass::Make("app", "v1", "{}").key;
  EXPECT_EQ(RequestClass::Make("app", "v1", "{}").key, base);
  EXPECT_NE(RequestClass::Make("app2", "v1", "{}").key, base);
  EXPECT_NE(RequestClass::Make("app", "v2", "{}").key, base);
  EXPECT_NE(RequestClass::Make("app", "v1", R"({"a":1})").key, base);
  // Without separators ("ap", "pv1") and ("app", "v1") would be the same text.
  EXPECT_NE(RequestClass::Make("ap", "pv1", "{}").key, base);
  EXPECT_EQ(RequestClass::Make("app", "v1", "{}").key.size(), 32u);
}

}  // namespace
}  // namespace clams::vram
