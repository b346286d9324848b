#!/usr/bin/env bash
# Device check: what gridexp assumes about an NVIDIA GPU machine, checked on one.
# Run from the repository root on a machine with a GPU, g++ and PyTorch:
#   bash scripts/gpu-check/run.sh
# 1. the driver's /proc files the worker reads to list its GPUs, and what it makes of them;
# 2. the PyTorch behaviour the executor relies on (scripts/gpu-check/torch_check.py).
set -u
status=0
echo "== /proc/driver/nvidia/gpus"
for information in /proc/driver/nvidia/gpus/*/information; do
  [ -e "$information" ] || { echo "(none)"; break; }
  echo "-- $information"
  cat "$information"
done
echo "== nvidia-smi -L"
nvidia-smi -L || true
echo "== detect_devices()"
program=$(mktemp)
if g++ -std=c++20 -O1 -I cpp cpp/worker/devices.cpp scripts/gpu-check/print_devices.cpp -o "$program"; then
  detected=$("$program")
  echo "$detected"
  expected=$(nvidia-smi -L 2>/dev/null | sed -E 's/ \(UUID.*//' | wc -l)
  found=$(printf '%s' "$detected" | grep -c '^GPU ' || true)
  if [ "$found" -ne "$expected" ]; then
    echo "FAIL: detect_devices() found $found GPUs, nvidia-smi lists $expected"
    status=1
  fi
else
  status=1
fi
echo "== PyTorch"
python3 scripts/gpu-check/torch_check.py || status=1
echo "== exit $status"
exit $status
