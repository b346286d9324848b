#!/usr/bin/env bash
# The main job: set everything up, then run the example grid (examples/sentiment, 8 trials)
# with gridexp-server and two local gridexp-workers, and print the results and the best trial.
# State is kept in examples/sentiment/.gridexp: a second run finds the grid finished; delete
# that folder (and models/, logs/) to run it again. PORT picks the port (default 8030).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GRIDEXP_VENV:-$ROOT/.venv}"
EXAMPLE="$ROOT/examples/sentiment"
PORT="${PORT:-8030}"
"$ROOT/scripts/setup.sh" "$@"

password_note="the password is in \$GRIDEXP_PASSWORD"
if [ -z "${GRIDEXP_PASSWORD:-}" ]; then
  GRIDEXP_PASSWORD="$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(18))')"
  # Generated for this run only, and the server listens on loopback only: safe to show.
  password_note="$password_note, generated for this run: $GRIDEXP_PASSWORD"
fi
export GRIDEXP_PASSWORD
RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/gridexp-example.XXXXXX")"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT

"$VENV/bin/gridexp-server" "$EXAMPLE" --host 127.0.0.1 --port "$PORT" &
server_pid=$!
# Ready when /healthz answers; a server that exits or is not up within 60 s is an error.
"$VENV/bin/python" - "$PORT" "$server_pid" <<'PY' || exit 1
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while True:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
            break
    except OSError as error:
        reason = error
    try:
        with open(f"/proc/{pid}/stat") as stat:
            exited = stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        exited = True
    if exited:
        sys.exit("run-example: the server exited before it answered (its output is above)")
    if time.monotonic() > deadline:
        sys.exit(f"run-example: the server did not answer /healthz within 60 s: {reason}")
    time.sleep(0.1)
PY

echo "run-example: watch the grid on the dashboard at http://127.0.0.1:$PORT/ ($password_note)"
echo "run-example: starting two workers (their output is prefixed with the trial id)"
worker_pids=()
for n in 1 2; do
  "$VENV/bin/gridexp-worker" --address="127.0.0.1:$PORT" --workdir="$RUN_DIR/worker-$n" \
    --download_scripts --download_data=False &
  worker_pids+=($!)
done
status=0
for pid in "${worker_pids[@]}"; do wait "$pid" || status=$?; done

echo
"$VENV/bin/gridexp" --address "127.0.0.1:$PORT" results sentiment_analysis1 --sort val_accuracy \
  --columns val_accuracy,val_loss
echo
echo "run-example: the programs are in $VENV/bin; '. $VENV/bin/activate' puts gridexp-server," \
  "gridexp-worker and gridexp on PATH"
exit "$status"
