"""Who owns a resource, and who may see it: the one rule behind every owner-scoped store.

An owner is the sha256 of the API key that created the resource (never the key itself), or
``None`` when the service runs without keys. A :class:`Viewer` is the caller: with keys
configured it sees only its own resources, unless it holds the admin scope; without keys it sees
everything. Stores answer "not found" for what a viewer may not see, so another key's id is
indistinguishable from an id that does not exist (404, not 403).

Models differ in one way: a model with no owner (built-in, configured, or published while auth
was off) is public, while an owned model is private to its owner like any other resource.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def owner_of(api_key: str | None) -> str | None:
    """Resources remember who created them by key digest, never by the key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest() if api_key else None


@dataclass(frozen=True)
class Viewer:
    """The caller of a store method: its owner digest, and whether it may see everyone's."""

    owner: str | None
    sees_all: bool = False

    @classmethod
    def of_key(cls, api_key: str | None, *, auth_enabled: bool, admin: bool = False) -> Viewer:
        return cls(owner=owner_of(api_key), sees_all=admin or not auth_enabled)

    def can_see(self, resource_owner: str | None) -> bool:
        """Owned resources (datasets, jobs, heads): only their owner, or an admin."""
        return self.sees_all or resource_owner == self.owner

    def can_see_model(self, model_owner: str | None) -> bool:
        """Models: public unless owned; owned ones follow :meth:`can_see`."""
        return model_owner is None or self.can_see(model_owner)

    @property
    def filter_owner(self) -> tuple[bool, str | None]:
        """``(filtered, owner)`` for list queries: unfiltered for admins and open services."""
        return (not self.sees_all, self.owner)


SYSTEM = Viewer(owner=None, sees_all=True)
"""Workers, the CLI on the host and retention: they act for every owner."""
