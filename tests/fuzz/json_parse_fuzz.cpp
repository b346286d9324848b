// Fuzz target: the one depth-limited JSON parser every request body goes through
// (parse_json, cpp/common/json_parse.h).
//
// Any text must give a value or an error, never a crash, a stack overflow or a memory
// blow-up, however deep it nests. The limit is exact: under a limit of 4 the text parses, to
// the same value, exactly when it parses under the default and nests at most 4 deep. What
// parses re-serializes (dump) to text that parses back to an equal value.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/json_parse.h"

namespace {

void require(bool condition) {
  if (!condition) std::abort();
}

// As json_parse.h counts it: a scalar is 0, an empty container 1.
int depth_of(const nlohmann::json& value) {
  if (!value.is_structured()) return 0;
  int deepest = 0;
  for (const nlohmann::json& item : value) deepest = std::max(deepest, depth_of(item));
  return deepest + 1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr int kShallow = 4;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  gridexp::Result<nlohmann::json> value = gridexp::parse_json(text);
  gridexp::Result<nlohmann::json> shallow = gridexp::parse_json(text, kShallow);
  if (!value) {
    require(!shallow);
    return 0;
  }
  require(depth_of(*value) <= gridexp::kMaxJsonDepth);
  require(shallow.is_ok() == (depth_of(*value) <= kShallow));
  if (shallow) require(*shallow == *value);
  gridexp::Result<nlohmann::json> again = gridexp::parse_json(value->dump());
  require(again && *again == *value);
  return 0;
}
