"""Scratch buffers reused from one block of images to the next by the batched physics."""

import torch


class _Workspace:
    """Scratch tensors reused from one block of (up to ``n``) images to the next.

    A large tensor allocated afresh is paid for again in page faults on first touch (about 2 us
    per 4 KiB page on the machines this was tuned on, more than the arithmetic); reusing the
    buffers makes that a one-off per call. Buffers are created zeroed on first use, so padding
    that is never written stays zero.
    """

    def __init__(self, n: int, device: torch.device) -> None:
        self.n, self.device = n, device
        self._buffers: dict[str, torch.Tensor] = {}

    def __call__(
        self, name: str, shape: tuple[int, ...], dtype: torch.dtype, m: int, fill: float = 0.0
    ) -> torch.Tensor:
        """The first ``m`` rows of buffer ``name`` (shape (n, *shape), created full of ``fill``)."""
        buf = self._buffers.get(name)
        if buf is None:
            buf = torch.full((self.n, *shape), fill, dtype=dtype, device=self.device)
            self._buffers[name] = buf
        return buf[:m]
