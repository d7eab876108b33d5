"""TorchServe handler of the ``generator`` model: latents or seeds (+ shifts) -> images and
their physical parameters (protocol: :mod:`sharpseek.serving.protocol`, docs/serving.md)."""

from base_handler import SharpseekHandler

from sharpseek.models.inference import GeneratorModel
from sharpseek.science.directions import DirectionSet
from sharpseek.serving.protocol import (
    decode_generate_request,
    encode_generate_response,
    run_generate,
)


class GeneratorHandler(SharpseekHandler):
    def load(self):
        self.model = GeneratorModel.from_checkpoint(
            self.archive["checkpoint"], store=self.store, device=self.device
        )
        if self.model.version != self.archive["gan"]:
            raise RuntimeError(
                f"archive says GAN {self.archive['gan']}, loaded {self.model.version}"
            )
        self.directions = (
            DirectionSet.load(self.store, self.model.version)
            if self.archive["directions"]
            else None
        )
        # DirectionSet.version, hashed once (answered with every request)
        self.directions_version = self.directions.version if self.directions else None

    def decode(self, parts):
        return decode_generate_request(
            parts, latent_dim=self.model.latent_dim, max_items=self.max_items
        )

    def infer(self, batch):
        return run_generate(
            self.model, self.directions, batch, directions_version=self.directions_version
        )

    def encode(self, answer):
        return encode_generate_response(answer)
