// The "slurm" field of a worker's registration (docs/protocol.md, "Register"): where in a Slurm
// cluster the worker runs, checked before it is stored and served by GET /api/v1/workers.
//
// A placement is an object with only the keys
//   job_id         a string of 1 to 20 decimal digits (required)
//   array_job_id   null or such a string
//   array_task_id  null or an integer 0..4294967295
//   node_list      null or a string of at most 1024 printable ASCII characters
//   restart_count  an integer >= 0
// and checked_slurm_placement() returns it with every key present (a missing optional key
// null, a missing restart_count 0), or kInvalidArgument naming the key that is wrong.
// A pure function; thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace gridexp {

Result<nlohmann::json> checked_slurm_placement(const nlohmann::json& placement);

}  // namespace gridexp
