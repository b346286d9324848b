// SlurmPlacement: where in a Slurm cluster this worker runs, from the variables Slurm sets in a
// job's environment, for the worker's registration (docs/protocol.md, "Register").
//
// Outside Slurm (SLURM_JOB_ID unset or empty) there is no placement. Inside, the placement is
// exactly the object
//   {"job_id": "<SLURM_JOB_ID>", "array_job_id": "<SLURM_ARRAY_JOB_ID>" or null,
//    "array_task_id": <SLURM_ARRAY_TASK_ID> or null, "node_list": "<SLURM_JOB_NODELIST>" or null,
//    "restart_count": <SLURM_RESTART_COUNT>, 0 when unset}
// holding only what the server accepts: a value it would refuse (an id that is not decimal
// digits, a number out of range, a node list too long or not printable ASCII) becomes null
// (restart_count 0), and a job id it would refuse means no placement, so a worker always
// registers. The environment is read through an EnvironmentLookup, which tests replace.
// Pure functions of their lookup; thread-safe when it is.
#pragma once

#include <functional>
#include <optional>

#include <nlohmann/json.hpp>

namespace gridexp {

// The value of an environment variable, or nullptr when it is unset (std::getenv's contract).
using EnvironmentLookup = std::function<const char*(const char*)>;

std::optional<nlohmann::json> slurm_placement(const EnvironmentLookup& lookup);

// slurm_placement() of this process's environment.
std::optional<nlohmann::json> slurm_placement_of_this_process();

}  // namespace gridexp
