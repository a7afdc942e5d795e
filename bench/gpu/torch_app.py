#!/usr/bin/env python3
"""torch_app: a CLAMS-shaped GPU app for the GPU proof (bench/gpu/proof.sh).

It answers the CLAMS HTTP API the way a Python SDK app does, with nothing but werkzeug, torch and
transformers (no Flask, no clams-python), so that it runs on a GPU machine that has only those:

  GET /    the app metadata (the Python SDK's shape, with est_gpu_mem_min/est_gpu_mem_typ)
  POST /   (or PUT) an MMIF document; parameters in the query string:
             model         tiny, base, small, medium, large, turbo: a Whisper architecture of that
                           size (transformers WhisperConfig), randomly initialised in fp16 on the
                           GPU at its first use and kept in this process's model cache
             seconds       length of the random log-mel input; cut into 30 s windows that run as
                           one batch (as batched Whisper inference does)
             tokens        greedy decoding steps after the encoder
             workspaceMiB  extra working memory held during the forward pass (a stand-in for
                           input-dependent buffers): the proof's deliberately under-declared class
           The answer is the input MMIF with one new signed view (a TextDocument with the decoded
           token ids, a TimeFrame and an Alignment). `appProfiling.torch` of that view holds this
           request's memory figures from PyTorch (and NVML when pynvml is there):
             reservedBefore, reservedPeak (torch.cuda.max_memory_reserved() during the request),
             allocatedPeak, contextBefore/contextAfter (the process's GPU memory outside PyTorch's
             allocator: CUDA context, kernels, library handles) and expectedGrowth =
             reservedPeak + contextAfter - reservedBefore - contextBefore, the growth of the
             process's GPU memory that the clams-cpp front should measure for this request.
           A CUDA out-of-memory error is answered as the Python SDK does: 500 with an error view
           whose message is "<class 'torch.OutOfMemoryError'>: CUDA out of memory. ...", plus the
           header `X-Clams-Oom: 1; tried=<bytes>` of the clams-cpp worker contract.

Simulated mode (no torch, or CLAMS_SIM_GPUS set): the same answers, with the GPU memory held as
simulated VRAM by child processes (`clams gpu sim-alloc`, binary in CLAMS_BIN): a CUDA context at
the first request, the weights of each cached model, and the activations during a request, with
sizes computed from the same Whisper configurations. The context and the weights are held until
the app exits, as a real app's CUDA memory is (their holders are started from one long-lived
thread: see _Spawner). The clams-cpp front attributes a worker's whole process tree, so it
measures these exactly as it measures a real app.

  python3 torch_app.py --port PORT | --socket PATH [--host 127.0.0.1]

Serves HTTP/1.1 with keep-alive on werkzeug's threaded server.
"""
import argparse
import ctypes
import datetime
import json
import logging
import math
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
import traceback

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

IDENTIFIER = "http://apps.clams.ai/torch-whisper-proof/v1"
APP_VERSION = "v1"
MMIF_VERSION = "1.1.0"
VOCAB = "http://mmif.clams.ai/vocabulary/"
AUDIO_DOCUMENT = VOCAB + "AudioDocument/v1"
VIDEO_DOCUMENT = VOCAB + "VideoDocument/v1"
TEXT_DOCUMENT = VOCAB + "TextDocument/v1"
TIME_FRAME = VOCAB + "TimeFrame/v6"
ALIGNMENT = VOCAB + "Alignment/v1"

MIB = 1 << 20
# Whisper's input: 30 s windows of 100 mel frames per second, 1500 encoder positions each.
WINDOW_SECONDS = 30
MEL_FRAMES_PER_WINDOW = 3000
ENCODER_POSITIONS = 1500
MAX_DECODER_POSITIONS = 448
# Bounds on the request parameters (the longest input a proof run sends is far below).
MAX_SECONDS = 3600
MAX_TOKENS = MAX_DECODER_POSITIONS - 8
MAX_WORKSPACE_MIB = 1 << 20
# fp16 weights and activations.
BYTES_PER_VALUE = 2

# The Whisper sizes (openai/whisper's dimensions): d_model, encoder layers, decoder layers,
# attention heads, mel bins, vocabulary.
SIZES = {
    "tiny": (384, 4, 4, 6, 80, 51865),
    "base": (512, 6, 6, 8, 80, 51865),
    "small": (768, 12, 12, 12, 80, 51865),
    "medium": (1024, 24, 24, 16, 80, 51865),
    "large": (1280, 32, 32, 20, 128, 51866),
    "turbo": (1280, 32, 4, 20, 128, 51866),
}
DEFAULT_MODEL = "small"

# Simulated mode: what the real app costs on a GPU, modelled.
# PyTorch's CUDA context with lazily loaded kernels and a cuBLAS handle (H100/H200, torch 2.x).
SIM_CONTEXT_BYTES = 500 * MIB
# cuBLAS workspace and allocator slack per request.
SIM_WORKSPACE_BYTES = 32 * MIB
# The caching allocator hands out 2 MiB blocks for large tensors.
SIM_BLOCK_BYTES = 2 * MIB
# Compute time of a 300 s input (10 windows) and 32 tokens, by model, in seconds; half of it is
# fixed, half grows with the windows. Never less than SIM_MIN_COMPUTE_SECONDS, so that the
# front's sampler (every 20 ms while busy) sees each request's peak even on a loaded machine.
SIM_COMPUTE_SECONDS = {"tiny": 0.3, "base": 0.35, "small": 0.45, "medium": 0.7, "large": 1.0, "turbo": 0.5}
SIM_COMPUTE_REFERENCE_WINDOWS = 10
SIM_MIN_COMPUTE_SECONDS = 0.3
# Model initialisation: a fixed cost plus bytes per second.
SIM_LOAD_FIXED_SECONDS = 0.2
SIM_LOAD_BYTES_PER_SECOND = 4e9
# How long a simulated VRAM holder may live if this process dies without stopping it.
SIM_HOLDER_MAX_SECONDS = 3600
PR_SET_PDEATHSIG = 1

ERROR_PREFIX = "Invalid input data. See below for validation error.\n\n"
FALSE_STRINGS = ("False", "false", "F", "f", "0")
TRIED_RE = re.compile(r"Tried to allocate (\d+(?:\.\d+)?) ?([KMGT]?i?B|bytes)\b", re.IGNORECASE)
UNITS = {"b": 1, "bytes": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
         "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4}


def _param(name, description, ptype, default, choices=None):
    p = {"name": name, "description": description, "type": ptype}
    if choices is not None:
        p["choices"] = choices
    p["default"] = default
    p["multivalued"] = False
    return p


METADATA = {
    "name": "Torch Whisper Proof",
    "description": "A Whisper-architecture model with random weights (transformers, fp16): real GPU memory and "
                   "compute without downloads, for measuring clams-cpp on a GPU.",
    "app_version": APP_VERSION,
    "mmif_version": MMIF_VERSION,
    "app_license": "Apache-2.0",
    "identifier": IDENTIFIER,
    "url": "https://github.com/clams-cpp/clams-cpp/tree/main/bench/gpu",
    "input": [[{"@type": AUDIO_DOCUMENT, "required": True}, {"@type": VIDEO_DOCUMENT, "required": True}]],
    "output": [{"@type": TEXT_DOCUMENT}, {"@type": TIME_FRAME, "properties": {"timeUnit": "milliseconds"}},
               {"@type": ALIGNMENT}],
    "parameters": [
        _param("model", "Whisper architecture size, randomly initialised in fp16 and kept in the worker's "
                        "model cache.", "string", DEFAULT_MODEL, list(SIZES)),
        _param("seconds", "Length of the random log-mel input in seconds (30 s windows, run as one batch).",
               "integer", WINDOW_SECONDS),
        _param("tokens", "Greedy decoding steps.", "integer", 32),
        _param("workspaceMiB", "Extra working memory held during the forward pass, in MiB (models "
                               "input-dependent buffers).", "integer", 0),
        _param("pretty", "The JSON body of the HTTP response will be re-formatted with 2-space indentation",
               "boolean", False),
        _param("runningTime", "The running time of the app will be recorded in the view metadata", "boolean",
               True),
        _param("hwFetch", "The hardware information (architecture, GPU and vRAM) will be recorded in the view "
                          "metadata", "boolean", False),
        _param("tfSamplingMode", "Sampling mode for TimeFrame annotations. Has no effect when the app does not "
                                 "process TimeFrames.", "string", "representatives",
               ["representatives", "single", "all"]),
    ],
    # Covers every size up to 300 s of input with its first request's CUDA context (large: ~3 GB
    # of weights, ~0.3 GB of activations per 30 s window, ~0.5 GB of context), with a third to
    # spare; workspaceMiB is not covered (the proof's under-declared class).
    "est_gpu_mem_min": 1000,
    "est_gpu_mem_typ": 8000,
}


class SimulatedOutOfMemory(RuntimeError):
    """Raised in simulated mode when `clams gpu sim-alloc` does not fit; the message is the
    CUDA-style one the simulated device gives, and the class prints as PyTorch's does
    ("<class 'torch.OutOfMemoryError'>")."""


SimulatedOutOfMemory.__module__ = "torch"
SimulatedOutOfMemory.__qualname__ = "OutOfMemoryError"


# ---- sizes ---------------------------------------------------------------------------------------

def param_count(model):
    """Parameters of the Whisper architecture `model` (transformers' layout; proj_out is tied)."""
    d, enc_layers, dec_layers, _, mels, vocab = SIZES[model]
    ffn = 4 * d
    attention = 4 * d * d + 3 * d  # q, k, v, out; k has no bias
    mlp = 2 * d * ffn + ffn + d
    encoder = (mels * d * 3 + d) + (d * d * 3 + d) + ENCODER_POSITIONS * d
    encoder += enc_layers * (attention + mlp + 4 * d) + 2 * d
    decoder = vocab * d + MAX_DECODER_POSITIONS * d
    decoder += dec_layers * (2 * attention + mlp + 6 * d) + 2 * d
    return encoder + decoder


def round_block(n):
    return (n + SIM_BLOCK_BYTES - 1) // SIM_BLOCK_BYTES * SIM_BLOCK_BYTES


def weight_bytes(model):
    return round_block(param_count(model) * BYTES_PER_VALUE)


def activation_bytes(model, windows, tokens):
    """Simulated mode: what one request allocates beyond the weights (encoder working set,
    cross-attention and self-attention caches, logits, cuBLAS workspace)."""
    d, _, dec_layers, _, mels, vocab = SIZES[model]
    per_window = (MEL_FRAMES_PER_WINDOW * mels + 2 * ENCODER_POSITIONS * 4 * d + 6 * ENCODER_POSITIONS * d
                  + 2 * dec_layers * ENCODER_POSITIONS * d + 2 * dec_layers * (tokens + 1) * d + 2 * vocab)
    return round_block(windows * per_window * BYTES_PER_VALUE + SIM_WORKSPACE_BYTES)


def windows_for(seconds):
    return max(1, math.ceil(seconds / WINDOW_SECONDS))


def tried_bytes(message):
    m = TRIED_RE.search(message or "")
    if not m:
        return 0
    return int(float(m.group(1)) * UNITS.get(m.group(2).lower(), 1))


# ---- parameters and MMIF -------------------------------------------------------------------------

def refine(args):
    """The Python SDK's refinement for this app's parameters: the first value of each, cast by
    type, checked against choices; defaults for absent ones."""
    refined = {}
    for p in METADATA["parameters"]:
        name = p["name"]
        values = args.getlist(name)
        if not values:
            refined[name] = p["default"]
            continue
        raw = values[0]
        if p["type"] == "boolean":
            value = raw not in FALSE_STRINGS
        elif p["type"] == "integer":
            try:
                value = int(raw)
            except ValueError:
                raise ValueError("invalid literal for int() with base 10: %r" % raw)
        else:
            value = raw
        if "choices" in p and value not in p["choices"]:
            raise ValueError('Value for parameter "%s" must be one of %r.' % (name, p["choices"]))
        refined[name] = value
    if not 1 <= refined["seconds"] <= MAX_SECONDS:
        raise ValueError("seconds must be between 1 and %d" % MAX_SECONDS)
    if not 1 <= refined["tokens"] <= MAX_TOKENS:
        raise ValueError("tokens must be between 1 and %d" % MAX_TOKENS)
    if not 0 <= refined["workspaceMiB"] <= MAX_WORKSPACE_MIB:
        raise ValueError("workspaceMiB must be between 0 and %d" % MAX_WORKSPACE_MIB)
    return refined


def now_iso():
    return datetime.datetime.now().isoformat()


def running_time(seconds):
    return str(datetime.timedelta(seconds=seconds))


def raw_parameters(args):
    return {k: args.getlist(k)[0] for k in args.keys() if args.getlist(k)}


def sources(mmif):
    return [d for d in mmif.get("documents", [])
            if isinstance(d, dict) and d.get("@type", "").split("/v")[0] in (AUDIO_DOCUMENT.split("/v")[0],
                                                                              VIDEO_DOCUMENT.split("/v")[0])]


def new_view_id(mmif):
    ids = {v.get("id") for v in mmif["views"] if isinstance(v, dict)}
    n = len(mmif["views"])
    while "v_%d" % n in ids:
        n += 1
    return "v_%d" % n


def error_answer(mmif, args, exc, oom_tried=None):
    """The Python SDK's error view: 500, pretty JSON, message "<class 'X'>: text"."""
    views = mmif.setdefault("views", [])
    metadata = {"timestamp": now_iso(), "app": IDENTIFIER}
    params = raw_parameters(args)
    if params:
        metadata["parameters"] = params
    metadata["error"] = {"message": "%s: %s" % (exc.__class__, exc),
                         "stackTrace": "\t\n".join(traceback.format_tb(exc.__traceback__))}
    views.append({"id": new_view_id(mmif), "metadata": metadata, "annotations": []})
    response = Response(json.dumps(mmif, indent=2), status=500, mimetype="application/json")
    if oom_tried is not None:
        response.headers["X-Clams-Oom"] = "1; tried=%d" % oom_tried if oom_tried > 0 else "1"
    return response


# ---- the GPU backends ----------------------------------------------------------------------------

class TorchBackend:
    """Real GPU: Whisper architectures from transformers, fp16, random weights."""

    simulated = False

    def __init__(self):
        import torch  # noqa: F401 (imported here so that simulated mode needs no torch)
        from transformers import WhisperConfig, WhisperForConditionalGeneration
        from transformers.modeling_outputs import BaseModelOutput
        self.torch = torch
        self.WhisperConfig = WhisperConfig
        self.Model = WhisperForConditionalGeneration
        self.BaseModelOutput = BaseModelOutput
        self.models = {}
        self.load_lock = threading.Lock()
        self.nvml = None
        self.nvml_handle = None

    def device_name(self):
        return self.torch.cuda.get_device_name(0)

    def _nvml_process_bytes(self):
        """This process's GPU memory as NVML reports it, or None (no pynvml, or NVML does not
        list our PID, e.g. in another PID namespace)."""
        if self.nvml is False:
            return None
        try:
            if self.nvml is None:
                import pynvml
                pynvml.nvmlInit()
                uuid = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0]
                if not uuid.startswith("GPU-"):
                    uuid = "GPU-" + str(self.torch.cuda.get_device_properties(0).uuid)
                self.nvml_handle = pynvml.nvmlDeviceGetHandleByUUID(uuid)
                self.nvml = pynvml
            for p in self.nvml.nvmlDeviceGetComputeRunningProcesses(self.nvml_handle):
                if p.pid == os.getpid() and p.usedGpuMemory is not None:
                    return int(p.usedGpuMemory)
            return None
        except Exception as e:  # any NVML trouble: report without the context
            log("pynvml unavailable (%s): context sizes are not reported" % e)
            self.nvml = False
            return None

    def _context(self):
        used = self._nvml_process_bytes()
        if used is None:
            return None
        return max(0, used - self.torch.cuda.memory_reserved())

    def _load(self, name):
        torch = self.torch
        d, enc_layers, dec_layers, heads, mels, vocab = SIZES[name]
        config = self.WhisperConfig(vocab_size=vocab, num_mel_bins=mels, d_model=d, encoder_layers=enc_layers,
                                    decoder_layers=dec_layers, encoder_attention_heads=heads,
                                    decoder_attention_heads=heads, encoder_ffn_dim=4 * d, decoder_ffn_dim=4 * d,
                                    max_source_positions=ENCODER_POSITIONS,
                                    max_target_positions=MAX_DECODER_POSITIONS)
        # Built directly on the GPU in fp16 (random initialisation there takes a second, not the
        # minute a CPU needs for large); should this transformers version refuse, on the CPU.
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float16)
        try:
            with torch.device("cuda"):
                model = self.Model(config)
        except Exception as e:
            if self.is_oom(e):
                raise
            log("building %s on the GPU failed (%s); building it on the CPU" % (name, e))
            torch.set_default_dtype(previous)
            model = self.Model(config)
        finally:
            torch.set_default_dtype(previous)
        return model.to(device="cuda", dtype=torch.float16).eval()

    def run(self, params):
        torch = self.torch
        windows = windows_for(params["seconds"])
        torch.cuda.init()
        torch.cuda.synchronize()
        reserved_before = torch.cuda.memory_reserved()
        context_before = self._context()
        torch.cuda.reset_peak_memory_stats()
        loaded = False
        try:
            with self.load_lock:
                model = self.models.get(params["model"])
                if model is None:
                    model = self._load(params["model"])
                    self.models[params["model"]] = model
                    loaded = True
            d, _, _, _, mels, _ = SIZES[params["model"]]
            with torch.inference_mode():
                features = torch.randn(windows, mels, MEL_FRAMES_PER_WINDOW, dtype=torch.float16, device="cuda")
                hidden = model.model.encoder(features).last_hidden_state
                workspace = None
                if params["workspaceMiB"] > 0:  # after the encoder: the allocation that fails is the last
                    workspace = torch.empty(params["workspaceMiB"] * MIB, dtype=torch.uint8, device="cuda")
                    workspace.fill_(1)
                encoder_outputs = self.BaseModelOutput(last_hidden_state=hidden)
                ids = torch.full((windows, 1), model.config.decoder_start_token_id, dtype=torch.long, device="cuda")
                past = None
                for _ in range(params["tokens"]):
                    out = model(encoder_outputs=encoder_outputs, decoder_input_ids=ids if past is None else ids[:, -1:],
                                past_key_values=past, use_cache=True)
                    past = out.past_key_values
                    ids = torch.cat([ids, out.logits[:, -1].argmax(-1, keepdim=True)], dim=1)
                torch.cuda.synchronize()
                tokens = ids[0, 1:].tolist()
                reserved_peak = torch.cuda.max_memory_reserved()
                allocated_peak = torch.cuda.max_memory_allocated()
                context_after = self._context()
                del workspace, features, hidden, encoder_outputs, past, out
        finally:
            # The Python SDK empties the cache after every request.
            torch.cuda.empty_cache()
        free, total = torch.cuda.mem_get_info()
        figures = {"source": "torch+nvml" if context_after is not None else "torch",
                   "modelLoaded": loaded, "reservedBefore": reserved_before, "reservedPeak": reserved_peak,
                   "allocatedPeak": allocated_peak, "contextBefore": context_before, "contextAfter": context_after,
                   "deviceTotal": total, "deviceFree": free}
        if context_before is not None and context_after is not None:
            figures["expectedGrowth"] = reserved_peak + context_after - reserved_before - context_before
        else:
            figures["expectedGrowth"] = reserved_peak - reserved_before
        return tokens, figures, allocated_peak

    def release_cache(self):
        self.torch.cuda.empty_cache()

    @staticmethod
    def is_oom(exc):
        name = exc.__class__.__name__
        return name == "OutOfMemoryError" or str(exc).startswith(("CUDA out of memory", "CUDA error: out of memory"))


def _spawner_main(jobs):
    while True:
        start, done = jobs.get()
        try:
            done.append(start())
        except BaseException as e:  # handed back to the caller
            done.append(e)
        done_event = done[0]
        done_event.set()


class _Spawner:
    """Starts the holder processes from one thread that lives as long as the app. A child's
    PR_SET_PDEATHSIG fires when the *thread* that started it ends, and Werkzeug's threaded server
    ends a request's thread with its connection: started from there, a model's weights vanished
    as soon as the request that loaded them was answered, unlike a real app's CUDA memory."""

    def __init__(self):
        import queue
        self.jobs = queue.Queue()
        threading.Thread(target=_spawner_main, args=(self.jobs,), daemon=True, name="sim-holders").start()

    def run(self, start):
        done = [threading.Event()]
        self.jobs.put((start, done))
        done[0].wait()
        result = done[1]
        if isinstance(result, BaseException):
            raise result
        return result


_SPAWNER = None
_SPAWNER_LOCK = threading.Lock()


def spawn_holder(start):
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None:
            _SPAWNER = _Spawner()
    return _SPAWNER.run(start)


class SimHolder:
    """Simulated VRAM held by a `clams gpu sim-alloc` child until release() or the app's exit."""

    def __init__(self, nbytes):
        self.nbytes = nbytes
        self.process = None
        if nbytes <= 0:
            return

        def die_with_parent():
            try:
                ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            except OSError:
                pass

        self.process = spawn_holder(lambda: subprocess.Popen(
            [os.environ.get("CLAMS_BIN", "clams"), "gpu", "sim-alloc", str(nbytes), "--seconds",
             str(SIM_HOLDER_MAX_SECONDS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=die_with_parent))
        line = self.process.stdout.readline()
        if not line.startswith("holding"):
            err = self.process.stderr.read().strip()
            self.process.wait()
            self.process = None
            if "out of memory" in err:
                raise SimulatedOutOfMemory(err[err.find("CUDA out of memory"):])
            raise RuntimeError("clams gpu sim-alloc failed: " + (err or line.strip()))

    def release(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait()
            self.process = None


class SimBackend:
    """Simulated GPU: the same sizes as TorchBackend, held by `clams gpu sim-alloc` children."""

    simulated = True

    def __init__(self):
        self.context = None
        self.models = {}
        self.lock = threading.Lock()

    def device_name(self):
        return "Simulated GPU 0"

    def _held(self):
        return sum(h.nbytes for h in self.models.values())

    def run(self, params):
        windows = windows_for(params["seconds"])
        name = params["model"]
        with self.lock:
            context_before = self.context.nbytes if self.context else 0
            reserved_before = self._held()
            if self.context is None:
                self.context = SimHolder(SIM_CONTEXT_BYTES)
            loaded = False
            if name not in self.models:
                time.sleep(SIM_LOAD_FIXED_SECONDS + weight_bytes(name) / SIM_LOAD_BYTES_PER_SECOND)
                self.models[name] = SimHolder(weight_bytes(name))
                loaded = True
            held = self._held()
        activations = activation_bytes(name, windows, params["tokens"])
        holders = []
        try:
            holders.append(SimHolder(activations))
            if params["workspaceMiB"] > 0:
                holders.append(SimHolder(params["workspaceMiB"] * MIB))
            scale = (0.5 + 0.5 * windows / SIM_COMPUTE_REFERENCE_WINDOWS) * params["tokens"] / 32.0
            time.sleep(max(SIM_MIN_COMPUTE_SECONDS, SIM_COMPUTE_SECONDS[name] * scale))
        finally:
            for h in holders:
                h.release()
        reserved_peak = held + activations + params["workspaceMiB"] * MIB
        figures = {"source": "simulated", "modelLoaded": loaded, "reservedBefore": reserved_before,
                   "reservedPeak": reserved_peak, "allocatedPeak": reserved_peak, "contextBefore": context_before,
                   "contextAfter": SIM_CONTEXT_BYTES,
                   "expectedGrowth": reserved_peak + SIM_CONTEXT_BYTES - reserved_before - context_before}
        tokens = [(7919 * i + len(name)) % SIZES[name][5] for i in range(params["tokens"])]
        return tokens, figures, reserved_peak

    def release_cache(self):
        pass

    @staticmethod
    def is_oom(exc):
        return isinstance(exc, SimulatedOutOfMemory)


# ---- the WSGI app --------------------------------------------------------------------------------

def log(message):
    sys.stderr.write("torch_app[%d]: %s\n" % (os.getpid(), message))
    sys.stderr.flush()


class App:
    def __init__(self, backend):
        self.backend = backend
        self.active = 0
        self.active_lock = threading.Lock()

    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.path != "/":
            response = Response(json.dumps({"message": "not found"}), status=404, mimetype="application/json")
        elif request.method == "GET":
            pretty = request.args.get("pretty", "false") not in FALSE_STRINGS and "pretty" in request.args
            response = Response(json.dumps(METADATA, indent=2 if pretty else None), mimetype="application/json")
        elif request.method in ("POST", "PUT"):
            response = self.annotate(request)
        else:
            response = Response(json.dumps({"message": "The method is not allowed for the requested URL."}),
                                status=405, mimetype="application/json")
        return response(environ, start_response)

    def annotate(self, request):
        t0 = time.monotonic()
        try:
            mmif = json.loads(request.get_data(as_text=True))
            if not isinstance(mmif, dict) or "metadata" not in mmif or not isinstance(mmif.get("views"), list):
                raise ValueError("not an MMIF document")
        except ValueError as e:
            return Response(ERROR_PREFIX + str(e), status=500, mimetype="text/plain")
        try:
            params = refine(request.args)
        except ValueError as e:
            return error_answer(mmif, request.args, e)
        with self.active_lock:
            self.active += 1
            overlapped = self.active > 1
        failed = None
        try:
            tokens, figures, allocated_peak = self.backend.run(params)
        except Exception as e:  # the SDK turns every app exception into an error view
            if self.backend.is_oom(e):
                log("out of memory: %s" % e)
                failed = error_answer(mmif, request.args, e, oom_tried=tried_bytes(str(e)))
            else:
                log("error: %s" % traceback.format_exc())
                failed = error_answer(mmif, request.args, e)
        finally:
            with self.active_lock:
                overlapped = overlapped or self.active > 1
                self.active -= 1
        if failed is not None:
            # The exception (and the tensors its traceback kept alive) is gone now.
            self.backend.release_cache()
            return failed
        figures["overlapped"] = overlapped
        elapsed = time.monotonic() - t0
        return Response(self.view_answer(mmif, request.args, params, tokens, figures, allocated_peak, elapsed),
                        mimetype="application/json")

    def view_answer(self, mmif, args, params, tokens, figures, allocated_peak, elapsed):
        vid = new_view_id(mmif)
        profiling = {"torch": figures}
        if params["runningTime"]:
            profiling["runningTime"] = running_time(elapsed)
        if params["hwFetch"]:
            total = figures.get("deviceTotal", 0)
            free = figures.get("deviceFree", 0)
            profiling["hardware"] = {
                "cpu": "%s, %d cores" % (platform.machine(), os.cpu_count() or 1),
                "cuda": ["%s, %d MiB total, %d MiB available, %d MiB peak used"
                         % (self.backend.device_name(), round(total / MIB), round(free / MIB),
                            round(allocated_peak / MIB))]}
        metadata = {"appProfiling": profiling, "timestamp": now_iso(), "app": IDENTIFIER,
                    "contains": {TEXT_DOCUMENT: {}, TIME_FRAME: {"timeUnit": "milliseconds"}, ALIGNMENT: {}}}
        raw = raw_parameters(args)
        if raw:
            metadata["parameters"] = raw
        metadata["appConfiguration"] = params
        annotations = []
        end_ms = params["seconds"] * 1000
        for n, doc in enumerate(sources(mmif) or [None], start=1):
            text = "tokens of the %s model: %s" % (params["model"], " ".join(str(t) for t in tokens))
            annotations.append({"@type": TEXT_DOCUMENT, "properties": {
                "id": "td_%d" % n, "text": {"@value": text, "@language": "en"}}})
            tf = {"id": "tf_%d" % n, "start": 0, "end": end_ms, "label": "speech"}
            if doc is not None:
                tf["document"] = doc.get("properties", {}).get("id", "")
            annotations.append({"@type": TIME_FRAME, "properties": tf})
            annotations.append({"@type": ALIGNMENT, "properties": {
                "id": "al_%d" % n, "source": "tf_%d" % n, "target": "td_%d" % n}})
        mmif["views"].append({"id": vid, "metadata": metadata, "annotations": annotations})
        return json.dumps(mmif, indent=2 if params["pretty"] else None)


def make_backend():
    if os.environ.get("CLAMS_SIM_GPUS"):
        return SimBackend()
    try:
        backend = TorchBackend()
    except ImportError as e:
        log("no torch/transformers (%s) and no CLAMS_SIM_GPUS: cannot run" % e)
        sys.exit(3)
    return backend


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--socket", help="listen on this Unix socket instead")
    args = parser.parse_args()
    if (args.port is None) == (args.socket is None):
        parser.error("give exactly one of --port and --socket")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = App(make_backend())
    if args.socket:
        server = make_server("unix://" + args.socket, 0, app, threaded=True)
    else:
        server = make_server(args.host, args.port, app, threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log("serving (%s) on %s" % ("simulated" if app.backend.simulated else "torch", args.socket or args.port))
    server.serve_forever()


if __name__ == "__main__":
    main()
