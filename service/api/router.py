"""All HTTP routes, one router per resource. Other areas add one ``include_router`` line each."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.routes import admin, classify, datasets, embeddings, exports, health, jobs, models

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(models.router)
api_router.include_router(embeddings.router)
api_router.include_router(classify.router)
api_router.include_router(datasets.router)
api_router.include_router(jobs.router)
api_router.include_router(exports.router)
api_router.include_router(admin.router)
