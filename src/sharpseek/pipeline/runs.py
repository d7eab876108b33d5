"""Running the Prefect ``pipeline`` flow from the command line (the demo): Prefect's
ephemeral settings, then the flow in this process. Its runs' summaries are
:mod:`sharpseek.pipeline.run_summaries`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sharpseek.config import Settings


def load_flows():
    """The Prefect flows, :mod:`sharpseek.pipeline.flows`."""
    from sharpseek.pipeline import flows  # Prefect is an optional extra: loaded where a flow runs

    return flows


def embedded_prefect_env(settings: Settings) -> dict[str, str]:
    """Environment for Prefect in ephemeral mode (no server): its database under
    ``<home>/prefect`` unless PREFECT_HOME is set, a startup timeout that a busy 2-core
    machine meets, no telemetry (there may be no internet)."""
    return {
        "PREFECT_HOME": str((settings.home / "prefect").resolve()),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def run_pipeline_flow(settings: Settings, **params: Any) -> dict[str, Any]:
    """Run the ``pipeline`` flow in this process (Prefect's ephemeral API unless
    PREFECT_API_URL names a server); returns what each stage did."""
    for key, value in embedded_prefect_env(settings).items():
        os.environ.setdefault(key, value)
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # its database
    flows = load_flows()
    return flows.pipeline(home=str(settings.home), preset=settings.preset, **params)
