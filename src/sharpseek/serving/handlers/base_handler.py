"""The base of sharpseek's TorchServe handlers: one answer per request, bad requests 400.

TorchServe calls ``initialize(context)`` once per worker and ``handle(data, context)`` with
a batch of requests (``data``: one dict of parts per request). A handler subclasses
:class:`SharpseekHandler` and fills four small hooks with one library call each: ``load``
(the model from the archive), ``decode`` / ``infer`` / ``encode`` (the wire protocol of
:mod:`sharpseek.serving.protocol`). No logic of its own: swapping TorchServe for another
server means re-writing this file, not the models.

A request the model cannot answer (bad shape, NaN, out-of-range numbers, unknown direction,
too many items, JSON nested too deep) gets HTTP 400 with a JSON ``{"code", "type",
"message"}`` body; the others in its batch are still answered. An unexpected exception
stays with the request that caused it too: when the batch's ``infer`` raises, each request
is answered alone, and the one that still fails gets HTTP 500 (the traceback goes to the
model log, never into the answer), so it is not mistaken for the client's fault and its
neighbours never see it (TorchServe would answer the whole batch 503).

(Not ``ts.torch_handler.base_handler.BaseHandler``: its ``initialize`` loads a serialized
``nn.Module`` file; ours loads sharpseek checkpoints through the library.)
"""

import json
import logging
from pathlib import Path

import torch

from sharpseek.data.local_store import LocalStore
from sharpseek.serving.protocol import NPZ, RequestError

log = logging.getLogger(__name__)


class InternalError(RuntimeError):
    """An unexpected failure kept to the one request that caused it (answered HTTP 500)."""


class SharpseekHandler:
    def initialize(self, context):
        properties = context.system_properties
        self.model_dir = Path(properties["model_dir"])
        self.archive = json.loads((self.model_dir / "sharpseek-archive.json").read_text())
        self.max_items = int(self.archive["max_items_per_request"])
        # The archive's files are laid out like the store they came from.
        self.store = LocalStore(self.model_dir)
        self.device = self._device(properties.get("gpu_id"))
        self.load()
        self.initialized = True

    @staticmethod
    def _device(gpu_id):
        if gpu_id is not None and torch.cuda.is_available():
            return f"cuda:{gpu_id}"
        return "cpu"

    def handle(self, data, context):
        decoded = [self._decode_one(parts) for parts in data]
        good = [i for i, item in enumerate(decoded) if not isinstance(item, Exception)]
        answers = dict(zip(good, self._infer_isolated([decoded[i] for i in good]), strict=True))
        out = []
        for idx, item in enumerate(decoded):
            answer = answers.get(idx, item)
            if isinstance(answer, Exception):
                code, kind = (
                    (400, "BadRequest")
                    if isinstance(answer, RequestError)
                    else (500, "InternalServerError")
                )
                phrase = "Bad Request" if code == 400 else "Internal Server Error"
                context.set_response_status(code=code, phrase=phrase, idx=idx)
                context.set_response_content_type(idx, "application/json")
                out.append(json.dumps({"code": code, "type": kind, "message": str(answer)}))
            else:
                context.set_response_content_type(idx, NPZ)
                out.append(self.encode(answer))
        return out

    def _decode_one(self, parts):
        try:
            return self.decode(parts)
        except RequestError as err:
            return err
        except Exception as err:  # noqa: BLE001 - kept to this request; logged in full
            log.exception("reading a request failed")
            return InternalError(f"reading the request failed ({type(err).__name__}); logged")

    def _infer_isolated(self, batch):
        """One answer per item of ``batch``: the batch at once, or, when that raises, each
        item alone, so an unexpected error fails only the request that causes it."""
        if not batch:
            return []
        try:
            return list(self.infer(batch))
        except Exception as err:  # noqa: BLE001 - isolated below; logged in full
            if len(batch) == 1:
                log.exception("inference failed for one request")
                return [InternalError(f"inference failed ({type(err).__name__}); logged")]
        return [answer for item in batch for answer in self._infer_isolated([item])]

    # hooks ----------------------------------------------------------------------------
    def load(self):
        raise NotImplementedError

    def decode(self, parts):
        raise NotImplementedError

    def infer(self, batch):
        raise NotImplementedError

    def encode(self, answer):
        raise NotImplementedError
