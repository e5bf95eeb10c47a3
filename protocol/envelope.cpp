// CAF serialisation of envelope payloads.

#include "protocol/envelope.hpp"

#include "absl/strings/str_cat.h"
#include "caf/binary_deserializer.hpp"
#include "caf/deserializer.hpp"
#include "caf/error.hpp"
#include "caf/sec.hpp"
#include "caf/serializer.hpp"

namespace satemu::protocol {

bool operator==(const envelope& x, const envelope& y) noexcept {
  return x.src == y.src && x.dst == y.dst && x.send_ns == y.send_ns
         && x.deliver_ns == y.deliver_ns && x.seq == y.seq && x.hops == y.hops
         && x.k == y.k && same_bytes(x.body, y.body);
}

std::string to_string(const envelope& x) {
  // Debian's Abseil has its own string_view, not an alias of std's.
  const auto k = to_string(x.k);
  return absl::StrCat("envelope(src=", x.src, ", dst=", x.dst,
                      ", send_ns=", x.send_ns, ", deliver_ns=", x.deliver_ns,
                      ", seq=", x.seq, ", hops=", x.hops,
                      ", kind=", absl::string_view(k.data(), k.size()), ", body=", x.body.size_bytes(),
                      " B)");
}

caf::error inspect(caf::serializer& f, payload_ptr& x) {
  auto n = x.size_bytes();
  if (auto err = f.begin_sequence(n))
    return err;
  // The serializer only reads through this pointer.
  if (n > 0)
    if (auto err = f.apply_raw(n, const_cast<std::byte*>(x->data())))
      return err;
  return f.end_sequence();
}

caf::error inspect(caf::deserializer& f, payload_ptr& x) {
  x.reset();
  std::size_t n = 0;
  if (auto err = f.begin_sequence(n))
    return err;
  if (n % 8 != 0 || n > max_wire_payload_bytes)
    return caf::make_error(caf::sec::invalid_argument,
                           "satemu::payload: bad byte count", n);
  // The length is untrusted: refuse it before allocating when the source can
  // tell us how much input is left.
  if (auto* bin = dynamic_cast<caf::binary_deserializer*>(&f);
      bin != nullptr && n > bin->remaining())
    return caf::make_error(caf::sec::end_of_stream,
                           "satemu::payload: byte count exceeds input", n);
  caf::error err;
  auto result = payload::try_build_words(n / 8, [&](std::span<std::uint64_t> out) {
    err = f.apply_raw(n, out.data());
  });
  if (err)
    return err;
  if (n > 0 && !result)
    return caf::make_error(caf::sec::runtime_error,
                           "satemu::payload: out of memory", n);
  if (auto end_err = f.end_sequence())
    return end_err;
  x = std::move(result);
  return caf::none;
}

} // namespace satemu::protocol
