#include "server/store.h"

namespace gridexp {

const char* to_string(TrialState state) {
  switch (state) {
    case TrialState::kPending:
      return "pending";
    case TrialState::kRunning:
      return "running";
    case TrialState::kDone:
      return "done";
    case TrialState::kFailed:
      return "failed";
    case TrialState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

std::optional<TrialState> trial_state_from_string(std::string_view text) {
  if (text == "pending") return TrialState::kPending;
  if (text == "running") return TrialState::kRunning;
  if (text == "done") return TrialState::kDone;
  if (text == "failed") return TrialState::kFailed;
  if (text == "cancelled") return TrialState::kCancelled;
  return std::nullopt;
}

}  // namespace gridexp
