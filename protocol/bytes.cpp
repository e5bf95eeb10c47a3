#include "protocol/bytes.hpp"

#include "absl/strings/str_cat.h"

namespace satemu::protocol {

std::uint64_t byte_reader::get(std::size_t n, const char* what) {
  if (!status_.ok())
    return 0;
  if (in_.size() - pos_ < n) {
    fail(absl::StrCat("truncated ", what, " (", n, " bytes needed, ", in_.size() - pos_, " left)"));
    return 0;
  }
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i)
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in_[pos_ + i])) << (8 * i);
  pos_ += n;
  return v;
}

std::string_view byte_reader::bytes(const char* what) {
  const auto n = u32(what);
  if (!status_.ok())
    return {};
  if (in_.size() - pos_ < n) {
    fail(absl::StrCat("truncated ", what, " (", n, " bytes announced, ", in_.size() - pos_,
                      " left)"));
    return {};
  }
  auto out = in_.substr(pos_, n);
  pos_ += n;
  return out;
}

std::uint64_t byte_reader::count(const char* what, std::size_t min_item_bytes) {
  const auto n = u64(what);
  if (status_.ok() && min_item_bytes > 0 && n > (in_.size() - pos_) / min_item_bytes)
    fail(absl::StrCat(what, " ", n, " does not fit in the ", in_.size() - pos_, " bytes left"));
  return status_.ok() ? n : 0;
}

void byte_reader::fail(std::string_view message) {
  if (status_.ok())
    status_ = absl::InvalidArgumentError(
      absl::StrCat(std::string(message), " at byte ", pos_));
}

void byte_reader::expect_end(const char* what) {
  if (status_.ok() && pos_ != in_.size())
    fail(absl::StrCat(in_.size() - pos_, " trailing bytes after ", what));
}

} // namespace satemu::protocol
