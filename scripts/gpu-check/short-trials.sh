#!/usr/bin/env bash
# On a GPU machine without our -dev packages or a package mirror (the lent H200: Ubuntu 24.04,
# Python 3.12 with torch): builds gridexp from Debian 12's .deb files unpacked into a prefix,
# then runs a CUDA grid of 48 short trials against a plain loop over the same grid in one
# process: one slot with --save_models=False three times (the overhead per trial: min, median,
# max), one with models saved (uploads overlapped with the next trial), and --trials-per-gpu
# 1, 2, 4 and auto (trials per second; for auto also the most trials that ran at once and
# what the worker said about it); each on a fresh server.
#   bash scripts/gpu-check/short-trials.sh     (from the repository root)
# The .deb files come in .gpu/debs (fetched beforehand with `apt-get download` on Debian 12:
# libcpp-httplib-dev libcpp-httplib0.11 libyaml-cpp-dev libyaml-cpp0.7 nlohmann-json3-dev
# libzip-dev libzip4 libsqlite3-dev libsqlite3-0 libssl-dev libssl3 zlib1g-dev libbrotli-dev
# libbrotli1 libbz2-dev libbz2-1.0 pkgconf pkgconf-bin libpkgconf3: scripts/gpu-check/fetch-debs.sh).
# Prints the NVML telemetry the server got with the heartbeats (/api/v1/workers) for each run.
# Output also in $OUT.
set -u
OUT="${OUT:-/tmp/out}"
export OUT
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
T0=$(date +%s)
stamp() { echo "== [$(($(date +%s) - T0)) s] $*"; }
stamp "machine"
nvidia-smi -L; python3 --version; which python3
python3 -c 'import torch, sysconfig; print("torch", torch.__version__, torch.cuda.is_available()); print("include", sysconfig.get_paths()["include"]); print("libdir", sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY"))'
ls "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h"

stamp "unpack Debian 12 packages into a prefix"
P=/tmp/prefix; MA=x86_64-linux-gnu; L=$P/usr/lib/$MA
mkdir -p $P
for deb in .gpu/debs/*.deb; do dpkg-deb -x "$deb" $P; done
for link in $L/*.so; do
  [ -L "$link" ] && [ ! -e "$link" ] || continue
  target=$(basename "$(readlink "$link")")
  for dir in /usr/lib/$MA /lib/$MA; do [ -e "$dir/$target" ] && ln -sfn "$dir/$target" "$link" && break; done
done
find $P/usr -name '*.pc' -path '*/pkgconfig/*' -exec sed -i -E "s#(^|[=[:space:]]|-I|-L)/usr(/|\$)#\1$P/usr\2#g" {} +
printf '#!/bin/sh\nLD_LIBRARY_PATH="%s" exec "%s" "$@"\n' "$L" "$P/usr/bin/pkgconf" >$P/pkg-config
chmod +x $P/pkg-config
export PKG_CONFIG_PATH=$L/pkgconfig:$P/usr/share/pkgconfig

stamp "build"
cmake -S . -B /tmp/build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=$P/usr \
  -DOPENSSL_ROOT_DIR=$P/usr -DCMAKE_BUILD_RPATH=$L -DPKG_CONFIG_EXECUTABLE=$P/pkg-config \
  "-DCMAKE_CXX_FLAGS=-isystem $P/usr/include/$MA -isystem $P/usr/include" \
  -DPython_EXECUTABLE="$(which python3)" >$OUT/cmake.txt 2>&1 || { tail -30 $OUT/cmake.txt; exit 1; }
ninja -C /tmp/build gridexp-server gridexp-worker gridexp-executor >$OUT/ninja.txt 2>&1 || { tail -40 $OUT/ninja.txt; exit 1; }
B=/tmp/build/cpp
ls -la $B/gridexp-server $B/worker/gridexp-worker $B/executor/gridexp-executor

stamp "experiment"
E=/tmp/exp; mkdir -p $E
cat >$E/config.yaml <<'YAML'
experiment_name: gpu_short_trials
dataset_size: 65536
hyperparameters:
  lr: [0.001, 0.003, 0.01, 0.03]
  width: [256, 512, 1024, 2048]
  seed: [1, 2, 3]
YAML
cat >$E/experiment.py <<'PY'
import time
import torch

def init_dataset(config):
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(config["dataset_size"], 64, device="cuda", generator=g)
    y = (x[:, :8].sum(1) > 0).long()
    return x, y

def run_one(hp, dataset):
    x, y = dataset
    torch.manual_seed(hp["seed"])
    model = torch.nn.Sequential(torch.nn.Linear(64, hp["width"]), torch.nn.ReLU(),
                                torch.nn.Linear(hp["width"], 2)).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=hp["lr"])
    started = time.perf_counter()
    for step in range(200):
        idx = torch.randint(0, x.shape[0], (1024,), device="cuda")
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(); loss.backward(); opt.step()
    torch.cuda.synchronize()
    acc = (model(x).argmax(1) == y).float().mean()
    return {"loss": loss, "acc": acc, "device": str(x.device),
            "run_one_s": time.perf_counter() - started}, model
PY

stamp "plain loop over the same grid (one process)"
( cd $E && python3 - <<'PY'
import itertools, time, torch, experiment
grid = [dict(lr=lr, width=w, seed=s) for lr in [0.001, 0.003, 0.01, 0.03]
        for s in [1, 2, 3] for w in [256, 512, 1024, 2048]]
data = experiment.init_dataset({"dataset_size": 65536})
experiment.run_one(grid[0], data)  # warm-up (CUDA context, kernels)
t = time.perf_counter(); inside = 0.0
for hp in grid:
    r, _ = experiment.run_one(hp, data); inside += r["run_one_s"]
total = time.perf_counter() - t
print(f"plain loop: {len(grid)} trials in {total:.2f} s; inside run_one {inside:.2f} s; "
      f"outside {1000 * (total - inside) / len(grid):.2f} ms per trial")
PY
)

# Each run: a fresh server, one gridexp-worker with the given flags, the figures from the
# server's attempt timestamps (the span from the first start to the last end, less the time
# inside run_one, per trial: what the coordinator and the worker add, gaps included).
run_gridexp() {
  local label=$1; shift
  stamp "gridexp: $label ($*)"
  rm -rf $E/.gridexp $E/models $E/logs /tmp/w
  GRIDEXP_PASSWORD=gpu-check $B/gridexp-server $E --host 127.0.0.1 --port 18030 >$OUT/server-$label.txt 2>&1 &
  local server=$!
  for i in $(seq 50); do python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:18030/healthz")' 2>/dev/null && break; sleep 0.2; done
  GRIDEXP_PASSWORD=gpu-check GRIDEXP_EXECUTOR=$B/executor/gridexp-executor PYTHONPATH=$PWD/python \
    timeout 240 $B/worker/gridexp-worker --address=127.0.0.1:18030 --workdir=/tmp/w --download_scripts \
    --download_data=False "$@" >$OUT/worker-$label.txt 2>&1 &
  local worker=$!
  # The NVML telemetry as the server has it from the heartbeats: read back while trials run.
  PYTHONPATH=$PWD/python GRIDEXP_PASSWORD=gpu-check WORKER=$worker LABEL=$label python3 - <<'PY'
import json, os, time
import gridexp
c = gridexp.Client("127.0.0.1:18030")
seen = None
for _ in range(60):
    time.sleep(0.5)
    if not os.path.exists(f"/proc/{os.environ['WORKER']}"):
        break
    gpus = [g for w in c.workers() for g in (w.get("gpus") or [])]
    if gpus:
        seen = gpus
        if any(g.get("utilization_percent") for g in gpus):
            break
print(f"NVML via /api/v1/workers ({os.environ['LABEL']}):", json.dumps(seen) if seen else "none reported")
PY
  wait $worker
  echo "worker exit $?"; grep -m2 -i "gpu\|slot" $OUT/worker-$label.txt
  PYTHONPATH=$PWD/python GRIDEXP_PASSWORD=gpu-check LABEL=$label python3 - <<'PY'
import json, os, statistics
from datetime import datetime
import gridexp
c = gridexp.Client("127.0.0.1:18030")
trials = c.trials("gpu_short_trials")
done = [t for t in trials if t["state"] == "done"]
if not done:
    raise SystemExit(f"{os.environ['LABEL']}: no trial done ({len(trials)} in the grid)")
def ms(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000
attempts = [c.attempts(t["id"])[-1] for t in done]
starts = [ms(a["started_at"]) for a in attempts]
ends = [ms(a["ended_at"]) for a in attempts]
# The first trial to start is the warm-up (as in the plain loop): the figures count the rest.
order = sorted(range(len(done)), key=lambda i: starts[i])[1:]
inside = sum(1000 * done[i]["results"]["run_one_s"] for i in order)
span = max(ends[i] for i in order) - min(starts[i] for i in order)
edges = sorted([(s, 1) for s in starts] + [(e, -1) for e in ends])
at_once = most = 0
for _, step in edges:
    at_once += step
    most = max(most, at_once)
peaks = [t.get("peak_gpu_memory_bytes") for t in done]
figures = {
    "label": os.environ["LABEL"], "done": len(done), "trials": len(trials),
    "devices": sorted({t["results"]["device"] for t in done}),
    "span_s": round(span / 1000, 3), "trials_per_s": round(len(order) / (span / 1000), 2),
    "overhead_ms_per_trial": round((span - inside) / len(order), 2),
    "peak_gpu_memory_mib": sorted({round(p / 2**20) for p in peaks if p})[:4],
    "most_at_once": most,
}
print(json.dumps(figures))
if figures["label"] == "models":
    import torch
    c.download_model(done[0]["id"], "/tmp/m.pt")
    state = torch.load("/tmp/m.pt", map_location="cpu")
    print("model downloaded and loaded on CPU:", sorted(state)[:2], next(iter(state.values())).device)
with open(os.path.join(os.environ.get("OUT", "/tmp/out"), "figures.jsonl"), "a") as out:
    out.write(json.dumps(figures) + "\n")
PY
  kill $server; wait $server
}

for run in 1 2 3; do run_gridexp "nomodels-$run" --save_models=False; done
run_gridexp "models" --save_models=True
for k in 1 2 4 auto; do run_gridexp "per-gpu-$k" --save_models=False --trials-per-gpu $k; done
grep -i "executor slots\|out of GPU memory\|NVML" $OUT/worker-per-gpu-auto.txt
stamp "summary"
python3 - <<'PY'
import json, os, statistics
rows = [json.loads(line) for line in open(os.path.join(os.environ.get("OUT", "/tmp/out"), "figures.jsonl"))]
overheads = [r["overhead_ms_per_trial"] for r in rows if r["label"].startswith("nomodels")]
if overheads:
    print(f"overhead per trial, --save_models=False, {len(overheads)} runs: min {min(overheads)} "
          f"ms, median {statistics.median(overheads)} ms, max {max(overheads)} ms")
for r in rows:
    print(f"{r['label']:12} {r['done']}/{r['trials']} done  {r['trials_per_s']} trials/s  "
          f"overhead {r['overhead_ms_per_trial']} ms/trial  peak GPU MiB {r['peak_gpu_memory_mib']}  "
          f"at once {r['most_at_once']}")
PY
stamp "end"
