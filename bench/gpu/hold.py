#!/usr/bin/env python3
"""hold: a foreign process that holds GPU memory, for the GPU proof (bench/gpu/proof.sh).

  python3 hold.py --leave 24GiB     hold all of GPU 0 but 24 GiB (after its own CUDA context)
  python3 hold.py --bytes 2GiB      hold 2 GiB

With PyTorch and a GPU it allocates real device memory (one torch.empty on cuda:0); with
CLAMS_SIM_GPUS set it becomes `clams gpu sim-alloc` (binary in CLAMS_BIN) with the same size.
Prints one JSON line once it holds the memory ({"pid", "bytes", "free_after", "total"}), then
holds it until SIGTERM or SIGINT. Exit status 1 if the memory cannot be had.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys

UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
         "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes(text):
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in UNITS:
        raise argparse.ArgumentTypeError("not a size: %r (e.g. 24GiB, 512MiB, 123456)" % text)
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])


def sim_devices(clams):
    out = subprocess.run([clams, "gpu", "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["devices"][0]


def hold_simulated(args):
    clams = os.environ.get("CLAMS_BIN", "clams")
    dev = sim_devices(clams)
    size = args.bytes if args.bytes is not None else dev["free_bytes"] - args.leave
    if size <= 0:
        print("hold: nothing to hold: %d bytes free, asked to leave %d" % (dev["free_bytes"], args.leave),
              file=sys.stderr)
        return 1
    child = subprocess.Popen([clams, "gpu", "sim-alloc", str(size)], stdout=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    if not line.startswith("holding"):
        child.wait()
        return 1
    after = sim_devices(clams)
    print(json.dumps({"pid": child.pid, "bytes": size, "free_after": after["free_bytes"],
                      "total": after["total_bytes"], "mode": "simulated"}), flush=True)

    def stop(*_):
        child.terminate()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    child.wait()
    return 0


def hold_torch(args):
    import torch
    torch.cuda.init()
    torch.empty(1, device="cuda")  # the context first, so that "leave" is what others can have
    free, total = torch.cuda.mem_get_info()
    size = args.bytes if args.bytes is not None else free - args.leave
    if size <= 0:
        print("hold: nothing to hold: %d bytes free, asked to leave %d" % (free, args.leave), file=sys.stderr)
        return 1
    try:
        block = torch.empty(size, dtype=torch.uint8, device="cuda")
        block.fill_(0)
        torch.cuda.synchronize()
    except RuntimeError as e:
        print("hold: %s" % e, file=sys.stderr)
        return 1
    free_after, _ = torch.cuda.mem_get_info()
    print(json.dumps({"pid": os.getpid(), "bytes": size, "free_after": free_after, "total": total,
                      "mode": "torch"}), flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    del block
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--leave", type=parse_bytes, help="leave this much of GPU 0 free")
    group.add_argument("--bytes", type=parse_bytes, help="hold this much")
    args = parser.parse_args()
    if os.environ.get("CLAMS_SIM_GPUS"):
        return hold_simulated(args)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    return hold_torch(args)


if __name__ == "__main__":
    sys.exit(main())
