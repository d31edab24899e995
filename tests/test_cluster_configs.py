"""The cluster configs in cluster/ are what `ray up` and KubeRay accept, and they deploy this package.

No network, no cloud calls: the launcher YAMLs go through Ray's own schema
(`ray/autoscaler/ray-schema.json`) and the `prepare_config` + `validate_config` that `ray up` runs
before it bootstraps (merging the provider's defaults.yaml needs no credentials and no boto3/google
client: both providers validate here without googleapiclient installed). Not checked here: that the
AMI / image / project ids exist (they are placeholders) and the provider-specific `node_config` bodies,
which Ray passes to the cloud API unchecked. The RayJob is checked field by field against the ray.io/v1
CRD fields that matter; there is no kubectl or CRD schema here.
"""

from __future__ import annotations

import copy
import json
import shlex
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import ray.autoscaler
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[1]
LAUNCHER = ["cluster/aws-gpu.yaml", "cluster/gcp-gpu.yaml"]
RAYJOB = REPO / "cluster" / "kuberay-rayjob.yaml"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    return json.loads(path.read_text())


def _load(rel: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / rel).read_text())


def _validate(cfg: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """What `ray up` does before it starts a node; returns the config merged with the defaults."""
    jsonschema.validate(cfg, schema)
    full = prepare_config(copy.deepcopy(cfg))
    validate_config(full)
    return full


def _gpu_types(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: t for name, t in cfg["available_node_types"].items()
            if t.get("resources", {}).get("GPU", 0) > 0}


@pytest.mark.parametrize("rel", LAUNCHER)
def test_launcher_config_passes_rays_own_validation(rel: str, schema: dict[str, Any]) -> None:
    full = _validate(_load(rel), schema)
    assert full["provider"]["type"] in ("aws", "gcp")
    assert full["available_node_types"][full["head_node_type"]]["max_workers"] == 0


@pytest.mark.parametrize("rel", LAUNCHER)
def test_launcher_cpu_head_and_autoscaling_gpu_workers(rel: str) -> None:
    cfg = _load(rel)
    head = cfg["available_node_types"][cfg["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0, "the head runs the driver, not training"
    assert head["resources"]["CPU"] >= 1
    gpus = _gpu_types(cfg)
    assert len(gpus) == 1 and cfg["head_node_type"] not in gpus
    (worker,) = gpus.values()
    assert worker["min_workers"] == 0, "GPU workers scale to zero between searches"
    assert 1 <= worker["max_workers"] <= cfg["max_workers"]
    assert isinstance(worker["resources"]["GPU"], int) and worker["resources"]["GPU"] >= 1
    # idle GPU workers go away (tests/test_autoscaler.py runs this shape on Ray's fake provider)
    assert 0 < cfg["idle_timeout_minutes"] <= 30
    if cfg["provider"]["type"] == "gcp":  # GCE attaches a GPU only when asked for one
        accel = worker["node_config"]["guestAccelerators"][0]
        assert accel["acceleratorCount"] == worker["resources"]["GPU"]
        assert {"onHostMaintenance": "TERMINATE"} in [
            {k: v for k, v in s.items() if k == "onHostMaintenance"}
            for s in worker["node_config"]["scheduling"]]


@pytest.mark.parametrize("rel", LAUNCHER)
def test_launcher_installs_this_package_and_starts_ray(rel: str) -> None:
    cfg = _load(rel)
    assert cfg["file_mounts"]["~/autoscale-ray"] == "."
    setup = " ; ".join(cfg["setup_commands"])
    assert "pip install -e ~/autoscale-ray" in setup
    # the package pins the Ray that the cluster runs
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("ray[") and "==2.60.0" in d and "default" in d for d in deps)
    head_start = " ".join(cfg["head_start_ray_commands"])
    assert "ray start --head" in head_start and "--autoscaling-config=~/ray_bootstrap_config.yaml" in head_start
    # `ray job stop` gives the search time to stop cleanly (the job supervisor reads it on the head)
    assert "RAY_JOB_STOP_WAIT_TIME_S=120 ray start --head" in head_start
    assert "ray start --address=$RAY_HEAD_IP:6379" in " ".join(cfg["worker_start_ray_commands"])


@pytest.mark.parametrize("rel", [*LAUNCHER, "cluster/kuberay-rayjob.yaml"])
def test_configs_hold_no_credentials(rel: str) -> None:
    text = (REPO / rel).read_text().lower()
    for secret in ("aws_access_key", "aws_secret", "secret_access_key", "private_key", "token:"):
        assert secret not in text


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["available_node_types"]["gpu_a10g"]["resources"].update(GPU=0.5),
     "is not of type 'integer'"),
    (lambda c: c["available_node_types"]["gpu_a10g"].update(min_worker=0),
     "'min_worker' was unexpected"),
    (lambda c: c.update(setup_comands=c.pop("setup_commands")),
     "'setup_comands' was unexpected"),
])
def test_schema_rejects_broken_copies(mutate: Any, message: str, schema: dict[str, Any]) -> None:
    cfg = _load("cluster/aws-gpu.yaml")
    mutate(cfg)
    with pytest.raises(jsonschema.ValidationError, match=message):
        _validate(cfg, schema)


def test_validate_config_rejects_unknown_head_type(schema: dict[str, Any]) -> None:
    cfg = _load("cluster/aws-gpu.yaml")
    cfg["head_node_type"] = "head_gpu"  # schema-valid, but names no node type
    with pytest.raises(ValueError, match="head_node_type"):
        _validate(cfg, schema)


# ---- KubeRay RayJob ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rayjob() -> dict[str, Any]:
    return yaml.safe_load(RAYJOB.read_text())


def _gpu_count(container: dict[str, Any]) -> int:
    return int(container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))


def test_rayjob_kind_and_lifecycle(rayjob: dict[str, Any]) -> None:
    assert rayjob["apiVersion"] == "ray.io/v1"
    assert rayjob["kind"] == "RayJob"
    assert rayjob["metadata"]["name"]
    spec = rayjob["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["rayClusterSpec"]["enableInTreeAutoscaling"] is True
    assert spec["rayClusterSpec"]["rayVersion"] == "2.60.0"


def test_rayjob_entrypoint_is_a_valid_run_command(rayjob: dict[str, Any]) -> None:
    from autoscale_ray.cli import build_parser

    argv = shlex.split(rayjob["spec"]["entrypoint"])
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert argv[0] in scripts
    args = build_parser().parse_args(argv[1:])
    assert args.verb == "run"
    assert (REPO / args.config).is_file(), f"{args.config} is not in the repository"
    # the output folder is on the volume every pod mounts
    mounts = _mounts(rayjob)
    assert any(args.out.startswith(m + "/") for m in mounts["head"] & mounts["gpu"])


def _mounts(rayjob: dict[str, Any]) -> dict[str, set[str]]:
    cluster = rayjob["spec"]["rayClusterSpec"]
    groups = {"head": cluster["headGroupSpec"]}
    groups.update({g["groupName"]: g for g in cluster["workerGroupSpecs"]})
    return {name: {m["mountPath"] for c in g["template"]["spec"]["containers"]
                   for m in c.get("volumeMounts", [])}
            for name, g in groups.items()}


def test_rayjob_runtime_env_ships_the_package(rayjob: dict[str, Any]) -> None:
    env = yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])
    assert isinstance(env, dict)
    assert env["working_dir"].endswith(".zip")
    assert any(p.startswith("autoscale-ray @ ") for p in env["pip"])


def test_rayjob_cpu_head_and_scale_to_zero_gpu_workers(rayjob: dict[str, Any]) -> None:
    cluster = rayjob["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"]
    assert all(_gpu_count(c) == 0 for c in head)
    gpu_groups = [g for g in cluster["workerGroupSpecs"]
                  if any(_gpu_count(c) >= 1 for c in g["template"]["spec"]["containers"])]
    assert len(gpu_groups) == 1
    (group,) = gpu_groups
    assert group["minReplicas"] == 0 and group["maxReplicas"] >= 1
    assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    for c in group["template"]["spec"]["containers"]:
        assert c["resources"]["requests"]["nvidia.com/gpu"] == c["resources"]["limits"]["nvidia.com/gpu"]
