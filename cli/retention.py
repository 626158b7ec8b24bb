"""`diva retention`: delete datasets, trained models and job folders by age, on this host's DIVA_HOME.

A dry run unless ``--apply``: it prints what would go and how much space it holds. The same
plan runs over HTTP for admins (``POST /v1/admin/retention``) and, when ``DIVA_RETENTION_*`` is
set, on every worker once per ``DIVA_RETENTION_INTERVAL_S``.
"""

from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Attach ``diva retention`` to the root app."""
    app.command("retention")(retention)


def retention(
    datasets_older_than: Optional[float] = typer.Option(None, help="Days; datasets older than this."),
    models_older_than: Optional[float] = typer.Option(None, help="Days; trained models older than this."),
    jobs_older_than: Optional[float] = typer.Option(None, help="Days; folders of jobs that ended before."),
    apply: bool = typer.Option(False, "--apply", help="Delete (default: a dry run that deletes nothing)."),
) -> None:
    """Plan (and with --apply, carry out) the retention policy; the flags win over DIVA_RETENTION_*."""
    from state import retention as policy_lib
    from state.settings import get_settings

    settings = get_settings()
    policy = policy_lib.RetentionPolicy(datasets_older_than, models_older_than, jobs_older_than)
    if policy.empty:
        policy = policy_lib.RetentionPolicy.from_settings(settings)
    if policy.empty:
        raise typer.BadParameter(
            "no policy: pass an age (e.g. --datasets-older-than 30) or set DIVA_RETENTION_*"
        )
    items = policy_lib.plan(settings, policy)
    if apply:
        items = policy_lib.apply(settings, items)
    verb = "deleted" if apply else "would delete"
    for item in items:
        typer.echo(f"{verb}\t{item.kind}\t{item.id}\t{item.bytes / 1e6:.1f} MB\t{item.age_days:.1f} days")
    typer.echo(f"{verb} {len(items)} items, {sum(i.bytes for i in items) / 1e6:.1f} MB")
