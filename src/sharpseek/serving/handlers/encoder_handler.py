"""TorchServe handler of the ``encoder`` model: model-space images -> SimSiam embeddings
(protocol: :mod:`sharpseek.serving.protocol`, docs/serving.md)."""

from base_handler import SharpseekHandler

from sharpseek.models.inference import EncoderModel
from sharpseek.serving.protocol import decode_embed_request, encode_embed_response, run_embed


class EncoderHandler(SharpseekHandler):
    def load(self):
        self.model = EncoderModel.from_checkpoint(
            self.archive["checkpoint"], store=self.store, device=self.device
        )
        if self.model.version != self.archive["encoder"]:
            raise RuntimeError(
                f"archive says encoder {self.archive['encoder']}, loaded {self.model.version}"
            )

    def decode(self, parts):
        return decode_embed_request(parts, max_items=self.max_items)

    def infer(self, batch):
        return run_embed(self.model, batch)

    def encode(self, answer):
        return encode_embed_response(answer, self.model.version)
