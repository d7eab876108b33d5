"""Same-region retrieval of encoder variants: train the tiny encoder with overrides, then
score every epoch's checkpoint on the held-out regions, with the projection and with the
pooled backbone features as the indexed vector.

How the figures in docs/training.md ("Encoder: what is measured") were made::

    .venv/bin/python benchmarks/encoder_variants.py DATASET_FOLDER '{"pair_window_hours": 12}'
    .venv/bin/python benchmarks/encoder_variants.py DATASET_FOLDER \\
        '{"model": {"widths": [16, 32, 64, 100], "representation": "backbone"}}'

DATASET_FOLDER is a dataset version folder (e.g. ``$SHARPSEEK_HOME/datasets/synthetic/
seed0-r300-f12-c6h-s1``, the demo's); the JSON holds
:func:`sharpseek.training.encoder.encoder_train_config` overrides of the ``tiny`` preset
(``model`` for :class:`sharpseek.models.SimSiamConfig` fields). One torch thread; the run
and its checkpoints go to a temporary folder. Prints the run's last metrics (the library's
retrieval of the indexed vector and both baselines), then one line per epoch.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

import numpy as np
import torch

from sharpseek.data.dataset import open_dataset
from sharpseek.data.local_store import LocalStore
from sharpseek.models.inference import EncoderModel
from sharpseek.science.evaluate import same_region_retrieval
from sharpseek.training.common import subset_whole_regions, training_split
from sharpseek.training.encoder import encoder_train_config, train_encoder


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    dataset = open_dataset(sys.argv[1])
    overrides = json.loads(sys.argv[2])
    model, augment = overrides.pop("model", None), overrides.pop("augment", None)
    config = encoder_train_config("tiny", model=model, augment=augment, **overrides)
    with tempfile.TemporaryDirectory() as folder:
        store = LocalStore(folder)
        start = time.perf_counter()
        run = train_encoder(config, dataset, store, version="variant", device="cpu", progress=False)
        last = {k: round(v, 3) for k, v in run.history[-1].items() if isinstance(v, float)}
        print(f"trained in {time.perf_counter() - start:.0f} s; last epoch: {last}")
        train_rows, held_rows = training_split(
            dataset, config.holdout_fraction, config.seed, config.batch_size
        )
        rows = subset_whole_regions(
            dataset.manifest, held_rows, config.eval_max_frames, config.seed
        )
        images = dataset.images(rows)
        table = dataset.manifest.iloc[rows]

        def score(features) -> float:
            features = np.asarray(features, dtype=np.float64)
            return round(
                same_region_retrieval(
                    features, table["harpnum"].to_numpy(), table["t_rec"].to_numpy()
                ),
                3,
            )

        for epoch in range(1, config.epochs + 1):
            encoder = EncoderModel.from_checkpoint(
                f"models/encoder/variant/epoch-{epoch:04d}.pt", store=store
            )
            network = encoder.model.eval()
            with torch.no_grad():
                x = torch.from_numpy(images).unsqueeze(1)
                backbone = network.backbone(x)
                projection = network.projector(backbone)
            unit = torch.nn.functional.normalize(backbone, dim=1)
            print(
                f"epoch {epoch:3d}  projection {score(projection)}  backbone "
                f"{score(backbone)}  backbone L2-normalised {score(unit)}",
                flush=True,
            )


if __name__ == "__main__":
    main()
