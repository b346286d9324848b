// The schema of SqliteStore's database and its migrations (private to the sqlite_*.cpp
// files): configure_connection sets a fresh connection's PRAGMAs and brings its schema up to
// date, one transaction per version. Call it once per connection, before any other use.
#pragma once

#include <sqlite3.h>

#include "common/status.h"
#include "server/sqlite_store.h"

namespace gridexp::sql {

// The first version with experiments.common_config and config_generation.
inline constexpr int kConfigsRecordedSinceVersion = 5;
// The first version with checkpoints and the attempts' resumed columns.
inline constexpr int kCheckpointsSinceVersion = 8;
// The first version with workers.slurm.
inline constexpr int kSlurmPlacementSinceVersion = 9;

// Sets the connection's PRAGMAs and migrates the schema to the newest version (or to
// `sqlite_options.migrate_up_to_version`); refuses a database from a newer gridexp.
Status configure_connection(sqlite3* db, const SqliteOptions& sqlite_options);

}  // namespace gridexp::sql
