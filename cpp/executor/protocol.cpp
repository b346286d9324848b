// parse_command: decode_command (common/executor_protocol.h) as the reader's Command.
#include "executor/protocol.h"

#include <utility>

namespace gridexp {

Command parse_command(std::string_view line) {
  Result<ExecutorCommand> decoded = decode_command(line);
  if (!decoded) return ProtocolError{decoded.status().message()};
  return std::visit([](auto&& command) -> Command { return std::move(command); },
                    std::move(decoded).value());
}

}  // namespace gridexp
