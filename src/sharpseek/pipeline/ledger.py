"""What is up to date: every stage has a *fingerprint*, the SHA-256 of the versions and hashes
of its inputs (the dataset's record ids and content hashes, the content-addressed model
versions, the training config, the FITS files' bytes). A :class:`Ledger` in the store
(``pipeline/stages/<stage>.json``) remembers the fingerprint of the last finished run of each
stage and what it wrote; a stage whose fingerprint matches and whose outputs still exist is
skipped. The ledger lives beside the data it describes, so every worker sees it and it
disappears with the data (Prefect's own result cache would live on one worker's disk and
outlive a deleted store).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from sharpseek.data.object_store import ObjectStore

log = logging.getLogger(__name__)

__all__ = [
    "DatasetRef",
    "Ledger",
    "StageOutcome",
    "dataset_digest",
    "dataset_ref",
    "files_digest",
    "fingerprint",
]

LEDGER_PREFIX = "pipeline/stages"
#: Bump when a stage's meaning changes, so every fingerprint changes with it.
PIPELINE_SCHEMA = 1


# ----------------------------------------------------------------------------------------------
# fingerprints and the ledger
# ----------------------------------------------------------------------------------------------
def fingerprint(inputs: Mapping[str, Any]) -> str:
    """SHA-256 (16 hex digits) of a stage's inputs, as canonical JSON (sorted keys)."""
    text = json.dumps({"schema": PIPELINE_SCHEMA, **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dataset_digest(manifest: pd.DataFrame) -> str:
    """SHA-256 (16 hex) of a dataset's content: its record ids and their images' hashes.

    Two versions holding the same records with the same pixels have the same digest, so an
    ingest that added nothing makes nothing downstream stale.
    """
    if not len(manifest):
        return hashlib.sha256(b"").hexdigest()[:16]
    pairs = manifest[["record_id", "content_hash"]].astype(str).sort_values("record_id")
    digest = hashlib.sha256()
    for rid, content in pairs.itertuples(index=False):
        digest.update(f"{rid}\t{content}\n".encode())
    return digest.hexdigest()[:16]


def files_digest(paths: Iterable[Path]) -> str:
    """SHA-256 (16 hex) of files' names and bytes (the inputs of a FITS ingest)."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


@dataclass
class StageOutcome:
    """What a stage did: ``skipped`` when its fingerprint matched a finished run."""

    stage: str
    skipped: bool
    fingerprint: str
    outputs: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Ledger:
    """The fingerprint and outputs of each stage's last finished run, in the store."""

    def __init__(self, store: ObjectStore):
        self.store = store

    @staticmethod
    def key(stage: str) -> str:
        return f"{LEDGER_PREFIX}/{stage}.json"

    def get(self, stage: str) -> dict[str, Any] | None:
        key = self.key(stage)
        if not self.store.exists(key):
            return None
        return json.loads(self.store.get_bytes(key))

    def current(
        self, stage: str, fp: str, *, exists: Callable[[dict[str, Any]], bool] | None = None
    ) -> dict[str, Any] | None:
        """The stage's record when it finished with fingerprint ``fp`` and ``exists(outputs)``
        (its outputs are still there); else None (the stage must run)."""
        entry = self.get(stage)
        if entry is None or entry.get("fingerprint") != fp:
            return None
        if exists is not None and not exists(entry.get("outputs", {})):
            log.info("stage %s: outputs of the recorded run are gone; running it again", stage)
            return None
        return entry

    def record(
        self, stage: str, fp: str, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> None:
        entry = {
            "stage": stage,
            "fingerprint": fp,
            "inputs": dict(inputs),
            "outputs": dict(outputs),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.store.put_bytes(self.key(stage), json.dumps(entry, indent=2, default=str).encode())


def _outcome_from(stage: str, entry: dict[str, Any], what: str) -> StageOutcome:
    return StageOutcome(
        stage,
        True,
        entry["fingerprint"],
        dict(entry.get("outputs", {})),
        f"{what} is up to date (finished {entry.get('finished', '?')}); skipped",
    )


# ----------------------------------------------------------------------------------------------
# datasets
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetRef:
    """A dataset version and the digest of its content (what downstream stages depend on)."""

    name: str
    version: str
    digest: str
    n_records: int
    n_regions: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def dataset_ref(ds) -> DatasetRef:
    """The :class:`DatasetRef` of a :class:`sharpseek.data.dataset.Dataset`."""
    return DatasetRef(
        ds.name,
        ds.version,
        dataset_digest(ds.manifest),
        len(ds.manifest),
        int(ds.info.get("n_regions", ds.manifest["harpnum"].nunique() if len(ds) else 0)),
    )
