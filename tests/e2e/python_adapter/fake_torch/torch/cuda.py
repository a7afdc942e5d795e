"""TEST DOUBLE of torch.cuda; see torch/__init__.py."""
import os

from torch import OutOfMemoryError  # noqa: F401  (torch.cuda.OutOfMemoryError, as in PyTorch)


def is_available():
    return os.environ.get("FAKE_TORCH_CUDA", "1") == "1"


def set_per_process_memory_fraction(fraction, device=None):
    if not 0 <= fraction <= 1:
        raise ValueError("Invalid fraction value: %r. Allowed range: 0~1" % (fraction,))
    path = os.environ.get("FAKE_TORCH_LOG")
    if path:
        with open(path, "a") as f:
            f.write("%r %r\n" % (fraction, device))
