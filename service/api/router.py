"""All HTTP routes, one router per resource. Other areas add one ``include_router`` line each.

Every resource router documents the errors any request can meet before its handler runs: a body
that does not parse (400), a missing or lesser key (401, 403), an oversized body (413) and a
body that fails validation (422).
"""

from __future__ import annotations

from fastapi import APIRouter

from service.api.routes import admin, classify, datasets, embeddings, exports, heads, health, jobs, models
from service.schemas.errors import error_responses

COMMON_ERRORS = error_responses(400, 401, 403, 413, 422)

api_router = APIRouter()
api_router.include_router(health.router)
for resource in (models, embeddings, classify, datasets, jobs, exports, admin, heads):
    api_router.include_router(resource.router, responses=COMMON_ERRORS)
