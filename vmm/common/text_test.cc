#include "vmm/common/text.h"

#include <gtest/gtest.h>

namespace ember::common {
namespace {

TEST(Text, JsonQuoteEscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(json_quote("a\"b\\c\n\t\x01"), R"("a\"b\\c\n\t\u0001")");
  EXPECT_EQ(json_quote("héllo"), "\"héllo\"");
}

TEST(Text, Utf8EncodesEveryLength) {
  std::string out;
  for (uint32_t cp : {0x41u, 0xE9u, 0x20ACu, 0x1F600u}) append_utf8(out, cp);
  EXPECT_EQ(out, "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
}

TEST(Text, HexHasA0xPrefixAndNoPadding) {
  EXPECT_EQ(hex(0), "0x0");
  EXPECT_EQ(hex(0xdeadbeef), "0xdeadbeef");
  EXPECT_EQ(hex(UINT64_MAX), "0xffffffffffffffff");
}

}  // namespace
}  // namespace ember::common
