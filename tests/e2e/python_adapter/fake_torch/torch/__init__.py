"""TEST DOUBLE of PyTorch (not PyTorch), for the tests of clams_worker.py's PyTorch cap.

Only what the adapter and the test app touch: torch.cuda.is_available(),
torch.cuda.set_per_process_memory_fraction(fraction, device), which appends one line
"<fraction> <device>" to the file named by $FAKE_TORCH_LOG, and the out-of-memory exception
(torch.OutOfMemoryError, also torch.cuda.OutOfMemoryError). $FAKE_TORCH_CUDA=0 makes
is_available() false. It is on PYTHONPATH in those tests only.
"""


class OutOfMemoryError(RuntimeError):
    pass


OutOfMemoryError.__module__ = "torch"

from torch import cuda  # noqa: E402  (cuda re-exports OutOfMemoryError)

__all__ = ["OutOfMemoryError", "cuda"]
