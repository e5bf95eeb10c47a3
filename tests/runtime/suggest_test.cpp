// Tests for runtime/suggest: "did you mean" hints, and words quoted in
// error messages.
#include "runtime/suggest.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace satemu::runtime {
namespace {

TEST(Suggest, NearestIsWithinTwoEdits) {
  const std::vector<std::string> keys = {"clock", "duration", "seed"};
  EXPECT_EQ(nearest("clokc", keys), "clock");
  EXPECT_EQ(nearest("duraton", keys), "duration");
  EXPECT_EQ(nearest("seeds", keys), "seed");
  EXPECT_EQ(nearest("clockwork", keys), "");
  EXPECT_EQ(nearest("xyz", keys), "");
  EXPECT_EQ(did_you_mean("clokc", keys), " (did you mean 'clock'?)");
  EXPECT_EQ(did_you_mean("xyz", keys), "");
}

TEST(Suggest, NearestOfAWordFarLongerThanEveryCandidateIsNone) {
  // A whole file read as one key: no candidate is near it.
  const std::string word(1 << 20, 'a');
  EXPECT_EQ(nearest(word, {"a", "aa", "aaa"}), "");
  EXPECT_EQ(nearest("aaaaa", {"a", "aaa"}), "aaa");
}

TEST(Suggest, ShortTextIsQuotedWhole) {
  EXPECT_EQ(in_quotes("clokc"), "'clokc'");
  EXPECT_EQ(in_quotes(""), "''");
  const std::string eighty(80, 'x');
  EXPECT_EQ(in_quotes(eighty), "'" + eighty + "'");
  EXPECT_EQ(clipped(eighty), eighty);
}

TEST(Suggest, LongTextIsClippedWithItsLength) {
  const std::string text = std::string(60, 'a') + std::string(21, 'b');
  EXPECT_EQ(clipped(text), std::string(60, 'a') + "...");
  EXPECT_EQ(in_quotes(text), "'" + std::string(60, 'a') + "...' (81 bytes)");
  const std::string big(1'000'000, 'k');
  EXPECT_EQ(in_quotes(big), "'" + std::string(60, 'k') + "...' (1000000 bytes)");
}

TEST(Suggest, ClippingDoesNotCutAUtf8Character) {
  // 59 ASCII bytes, then 'é' (2 bytes) across the 60-byte cut.
  const std::string text = std::string(59, 'a') + "\xC3\xA9" + std::string(40, 'z');
  EXPECT_EQ(clipped(text), std::string(59, 'a') + "...");
  const std::string whole = std::string(58, 'a') + "\xC3\xA9" + std::string(40, 'z');
  EXPECT_EQ(clipped(whole), std::string(58, 'a') + "\xC3\xA9" + "...");
}

TEST(Suggest, ControlCharactersShowAsEscapes) {
  EXPECT_EQ(in_quotes("a\nb\tc\x01"), "'a\\nb\\tc\\x01'");
  EXPECT_EQ(clipped(std::string("x\x7F", 2)), "x\\x7F");
  EXPECT_EQ(clipped("ünïcode"), "ünïcode");
}

} // namespace
} // namespace satemu::runtime
