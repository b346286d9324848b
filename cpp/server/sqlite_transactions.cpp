// SqliteStore's transactions: the batches GroupCommit hands over, each run in as few
// transactions as its calls allow (normally one, with a savepoint per call), and the
// connection's lifetime around them.
#include <algorithm>

#include "server/sqlite_store_impl.h"

namespace gridexp {

SqliteStore::Impl::Impl(sqlite3* database, const Clock& store_clock, StoreOptions store_options)
    : db(database), clock(store_clock), options(store_options) {}

SqliteStore::Impl::~Impl() {
  checkpointer.reset();
  statements.finalize_all();
  sqlite3_close(db);
}

Status SqliteStore::Impl::QueuedCall::run(TimeMs now) {
  try {
    return invoke_(body_, now);
  } catch (...) {
    raised = std::current_exception();
    return Status::internal("the store call raised an exception");
  }
}

void SqliteStore::Impl::run_batch(const std::vector<QueuedCall*>& calls) {
  std::size_t next = 0;
  while (next < calls.size()) next = run_transaction(calls, next);
}

// Runs calls[first...] in one transaction until all have run or the transaction is lost
// (an I/O error or a full disk makes SQLite roll all of it back); returns where the next
// transaction starts. A lone call needs no savepoint: its failure rolls back everything.
std::size_t SqliteStore::Impl::run_transaction(const std::vector<QueuedCall*>& calls,
                                               std::size_t first) {
  const bool writes =
      std::any_of(calls.begin() + static_cast<std::ptrdiff_t>(first), calls.end(),
                  [](const QueuedCall* call) { return call->kind == TransactionKind::kWrite; });
  Status begun = execute(writes ? "BEGIN IMMEDIATE" : "BEGIN");
  if (!begun) {
    for (std::size_t i = first; i < calls.size(); ++i) calls[i]->batch_failure = begun;
    return calls.size();
  }
  ++transactions;
  const bool alone = calls.size() - first == 1;
  std::vector<QueuedCall*> kept;  // succeeded: they stand or fall with the COMMIT
  for (std::size_t i = first; i < calls.size(); ++i) {
    if (Status lost = run_call(*calls[i], alone, kept); !lost) {
      fail_all(kept, lost);
      abandon_transaction();
      return i + 1;
    }
  }
  commit(kept);
  return calls.size();
}

// Runs one call of the open transaction (in a savepoint of its own unless `alone`), adding
// it to `kept` if it succeeded. Returns why the transaction is lost, if it is: the call's
// own failure then stands, and a call that succeeded fails with the loss.
Status SqliteStore::Impl::run_call(QueuedCall& call, bool alone, std::vector<QueuedCall*>& kept) {
  if (!alone) {
    if (Status savepoint = execute("SAVEPOINT store_call"); !savepoint) {
      call.batch_failure = savepoint;
      return savepoint;
    }
  }
  Status status = call.run(clock.now_ms());
  if (Status ended = end_call(status, alone); !ended) {
    if (status) call.batch_failure = ended;
    return ended;
  }
  if (status) kept.push_back(&call);
  return Status::ok();
}

// Keeps a call's changes if `status` is OK and undoes them otherwise; not OK when that
// lost the transaction.
Status SqliteStore::Impl::end_call(const Status& status, bool alone) {
  if (sqlite3_get_autocommit(db) != 0) {  // SQLite rolled the whole transaction back
    return status ? Status::internal("the transaction was rolled back") : status;
  }
  if (alone) return Status::ok();
  return status ? execute("RELEASE store_call") : rolled_back_to_savepoint();
}

// Commits the transaction, unless no call in it succeeded.
void SqliteStore::Impl::commit(const std::vector<QueuedCall*>& kept) {
  if (kept.empty()) {
    abandon_transaction();
    return;
  }
  Status committed = execute("COMMIT");
  if (!committed) {
    fail_all(kept, committed);
    abandon_transaction();
  }
}

void SqliteStore::Impl::fail_all(const std::vector<QueuedCall*>& calls, const Status& status) {
  for (QueuedCall* call : calls) call->batch_failure = status;
}

Status SqliteStore::Impl::rolled_back_to_savepoint() {
  Status status = execute("ROLLBACK TO store_call");
  return status ? execute("RELEASE store_call") : status;
}

// An I/O error may already have ended the transaction.
void SqliteStore::Impl::abandon_transaction() {
  if (sqlite3_get_autocommit(db) == 0) ignore_outcome(execute("ROLLBACK"));
}

}  // namespace gridexp
