// Fuzz target: the executor's command lines (parse_command, cpp/executor/protocol.h), which
// carry the trial the server handed out.
//
// Any line must give a command or a ProtocolError, never a crash; a run command's trial id
// must be usable as a file name (it names the model file <model_dir>/<id>.pt).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "executor/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  gridexp::Command command = gridexp::parse_command(line);
  if (const auto* run = std::get_if<gridexp::RunCommand>(&command)) {
    const std::string& id = run->trial_id;
    if (id.empty() || id == "." || id == ".." || id.find('/') != std::string::npos ||
        id.find('\0') != std::string::npos) {
      std::abort();
    }
  }
  return 0;
}
