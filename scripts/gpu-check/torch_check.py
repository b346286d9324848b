"""What the executor asks of PyTorch on a GPU, asked on a real one (scripts/gpu-check/run.sh).

The executor (cpp/executor) turns result tensors into JSON through .tolist()/.item(), saves a
model with torch.save(model.state_dict(), path), and after each trial runs gc.collect() and
torch.cuda.empty_cache() when CUDA is initialized. Each check prints ok or raises.
"""

import gc
import os
import sys
import tempfile

import torch

assert torch.cuda.is_available(), "no CUDA device visible to torch"
print("torch", torch.__version__, "device", torch.cuda.get_device_name(0))

# Results: CUDA scalars and tensors convert the way python_json.cpp converts them.
loss = torch.tensor(0.25, device="cuda")
curve = torch.arange(3, device="cuda", dtype=torch.float32) / 4
assert loss.tolist() == 0.25 and loss.item() == 0.25
assert curve.tolist() == [0.0, 0.25, 0.5]
print("ok: CUDA tensors convert through .tolist() / .item()")

# Models: a state_dict of CUDA tensors saves, and loads on a machine without the GPU
# (map_location="cpu"), as a user downloading it to a laptop would.
model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
model = model.cuda()
with tempfile.TemporaryDirectory() as directory:
    path = os.path.join(directory, "model.pt")
    torch.save(model.state_dict(), path)
    on_cpu = torch.load(path, map_location="cpu")
    on_gpu = torch.load(path)
    assert all(t.device.type == "cpu" for t in on_cpu.values())
    assert all(t.device.type == "cuda" for t in on_gpu.values())
    assert all(torch.equal(on_cpu[k], model.state_dict()[k].cpu()) for k in on_cpu)
print("ok: a CUDA state_dict saves and loads with and without map_location")


# After a trial: what the trial held on the GPU is given back to the driver once the
# executor drops it, collects cycles and empties the cache (release_after_trial, when the trial
# left memory allocated).
def trial():
    big = torch.empty(512 * 1024 * 1024, dtype=torch.uint8, device="cuda")
    try:
        raise RuntimeError("a trial that fails keeps its frame in the traceback")
    except RuntimeError as error:
        return error, big  # a traceback cycle holding the tensor


held = trial()
del held, model, on_gpu, loss, curve
assert torch.cuda.is_initialized()
gc.collect()
torch.cuda.empty_cache()
reserved = torch.cuda.memory_reserved()
assert reserved == 0, f"{reserved} bytes still reserved after gc + empty_cache"
print("ok: gc.collect() + torch.cuda.empty_cache() return every reserved byte")

# Out of memory: the error a trial reports names torch's exception type.
try:
    torch.empty(1 << 48, dtype=torch.uint8, device="cuda")
except Exception as error:  # noqa: BLE001 - its type is what is checked
    kind = f"{type(error).__module__}.{type(error).__qualname__}"
    print("ok: an impossible allocation raises", kind)
    assert kind == "torch.OutOfMemoryError", kind
else:
    sys.exit("a 256 TiB allocation succeeded")
