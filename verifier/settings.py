"""Verifier service settings, read once from the environment (prefix SIMKO_VERIFIER_)."""
from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class VerifierSettings(BaseSettings):
    """E.g. SIMKO_VERIFIER_DEADLINE_S=2 SIMKO_VERIFIER_WORKERS=4 python -m verifier.service."""

    model_config = SettingsConfigDict(env_prefix="SIMKO_VERIFIER_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8001, ge=0, le=65535)
    workers: int = Field(2, ge=1, le=256, description="grader worker processes (the pool size)")
    deadline_s: float = Field(5.0, gt=0, le=600, description="hard per-item grading deadline")
    memory_mb: int = Field(2048, ge=0, description="RLIMIT_AS per grader worker; 0 = no cap")
    max_items: int = Field(512, ge=1, description="items per request; more gives 413")
    max_response_chars: int = Field(32_000, ge=100, description="longer responses keep their tail")
    max_gold_chars: int = Field(10_000, ge=10, description="longer gold answers give 422")
    max_question_chars: int = Field(20_000, ge=100, description="longer questions keep their tail (the options)")
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="larger bodies give 413")
    recycle_after: int = Field(2_000, ge=1, description="replace a worker after this many items")
