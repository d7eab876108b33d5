"""The base of sharpseek's TorchServe handlers: one answer per request, bad requests 400.

TorchServe calls ``initialize(context)`` once per worker and ``handle(data, context)`` with
a batch of requests (``data``: one dict of parts per request). A handler subclasses
:class:`SharpseekHandler` and fills four small hooks with one library call each: ``load``
(the model from the archive), ``decode`` / ``infer`` / ``encode`` (the wire protocol of
:mod:`sharpseek.serving_protocol`). No logic of its own: swapping TorchServe for another
server means re-writing this file, not the models.

A request the model cannot answer (bad shape, NaN, unknown direction, too many items) gets
HTTP 400 with a JSON ``{"code", "type", "message"}`` body — the others in its batch are still
answered. An unexpected exception fails the whole batch (TorchServe answers 503), so it is
never mistaken for the client's fault.

(Not ``ts.torch_handler.base_handler.BaseHandler``: its ``initialize`` loads a serialized
``nn.Module`` file; ours loads sharpseek checkpoints through the library.)
"""

import json
import logging
from pathlib import Path

from sharpseek.serving_protocol import NPZ, RequestError
from sharpseek.store import LocalStore

log = logging.getLogger(__name__)


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
        import torch

        if gpu_id is not None and torch.cuda.is_available():
            return f"cuda:{gpu_id}"
        return "cpu"

    def handle(self, data, context):
        decoded = []
        for parts in data:
            try:
                decoded.append(self.decode(parts))
            except RequestError as err:
                decoded.append(err)
        good = [item for item in decoded if not isinstance(item, RequestError)]
        answers = iter(self.infer(good) if good else [])
        out = []
        for idx, item in enumerate(decoded):
            answer = item if isinstance(item, RequestError) else next(answers)
            if isinstance(answer, RequestError):
                context.set_response_status(code=400, phrase="Bad Request", idx=idx)
                context.set_response_content_type(idx, "application/json")
                body = {"code": 400, "type": "BadRequest", "message": str(answer)}
                out.append(json.dumps(body))
            else:
                context.set_response_content_type(idx, NPZ)
                out.append(self.encode(answer))
        return out

    # hooks ----------------------------------------------------------------------------
    def load(self):
        raise NotImplementedError

    def decode(self, parts):
        raise NotImplementedError

    def infer(self, batch):
        raise NotImplementedError

    def encode(self, answer):
        raise NotImplementedError
