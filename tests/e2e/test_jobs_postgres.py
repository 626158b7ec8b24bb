"""The same worker and API on PostgreSQL (the production job store): one job end to end,
cancellation included, with the store in a private schema of the server DIVA_TEST_POSTGRES_URL
names. Skips with the reason where no PostgreSQL answers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

try:  # with or without tests/__init__.py
    from tests.e2e.conftest import Stack
    from tests.e2e.support import LabHome, copy_home
except ImportError:
    from e2e.conftest import Stack
    from e2e.support import LabHome, copy_home

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
PG_URL = os.environ.get("DIVA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    schema = f"e2e_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        pytest.skip(f"no PostgreSQL answers at {PG_URL} (set DIVA_TEST_POSTGRES_URL): {exc.orig}")
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="module")
def pg_stack(lab_template: LabHome, pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("pg-stack")
    stack = Stack(copy_home(lab_template, root / "home"), root, {"DIVA_DATABASE_URL": pg_url})
    try:
        stack.start_worker()
        stack.start_api()
        yield stack
    finally:
        stack.close()


def test_job_lifecycle_on_postgres(pg_stack: Stack, pg_url: str) -> None:
    from sqlalchemy import create_engine, text

    long_job = pg_stack.submit(steps=400)
    pg_stack.wait_job(long_job, lambda j: (j.get("progress") or {}).get("step", 0) >= 1)
    assert pg_stack.client.post(f"/v1/jobs/{long_job}/cancel").status_code == 200
    assert pg_stack.wait_done(long_job, 60)["status"] == "cancelled"

    job_id = pg_stack.submit(steps=4, publish="always")
    job = pg_stack.wait_done(job_id)
    assert job["status"] == "succeeded", pg_stack.diagnostics()
    assert job["result_model"] in {m["id"] for m in pg_stack.client.get("/v1/models").json()["data"]}

    engine = create_engine(pg_url)
    with engine.connect() as conn:  # the rows really live in PostgreSQL
        rows = dict(conn.execute(text("SELECT id, status FROM jobs")).all())
    engine.dispose()
    assert rows == {long_job: "cancelled", job_id: "succeeded"}
