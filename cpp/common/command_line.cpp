#include "common/command_line.h"

#include <algorithm>

namespace gridexp {

Result<std::vector<CommandLineItem>> split_command_line(
    const std::vector<std::string>& arguments,
    const std::function<bool(const std::string& name)>& takes_value) {
  std::vector<CommandLineItem> items;
  for (std::size_t i = 0; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (argument == "-h") {
      items.push_back({"help", argument, std::nullopt});
      continue;
    }
    if (argument.size() < 2 || argument[0] != '-') {
      items.push_back({"", argument, argument});
      continue;
    }
    if (argument.rfind("--", 0) != 0 || argument.size() == 2) {
      return Status::invalid_argument("unknown option " + argument + " (see --help)");
    }
    CommandLineItem item;
    item.spelling = argument;
    if (std::size_t equals = argument.find('='); equals != std::string::npos) {
      item.spelling.resize(equals);
      item.value = argument.substr(equals + 1);
    }
    item.name = item.spelling.substr(2);
    std::replace(item.name.begin(), item.name.end(), '-', '_');
    if (!item.value && takes_value(item.name)) {
      if (i + 1 >= arguments.size()) {
        return Status::invalid_argument(item.spelling + " needs a value");
      }
      item.value = arguments[++i];
    }
    items.push_back(std::move(item));
  }
  return items;
}

}  // namespace gridexp
