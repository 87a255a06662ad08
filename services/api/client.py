"""A small synchronous client for the job API (used by `simko submit/status/cancel/resume/logs/scale`)."""
from __future__ import annotations

import os
from typing import Any

import httpx


class ApiError(RuntimeError):
    def __init__(self, status: int, detail: Any):
        self.status, self.detail = status, detail
        super().__init__(f"HTTP {status}: {detail}")


class JobApiClient:
    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 30.0):
        token = token if token is not None else os.environ.get("SIMKO_API_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)

    def _call(self, method: str, path: str, **kwargs) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, detail)
        return response.json()

    def submit(self, spec: dict) -> str:
        return self._call("POST", "/v1/jobs", json=spec)["id"]

    def jobs(self) -> list[dict]:
        return self._call("GET", "/v1/jobs")

    def job(self, job_id: str) -> dict:
        return self._call("GET", f"/v1/jobs/{job_id}")

    def metrics(self, job_id: str, since: int = 0) -> list[dict]:
        return self._call("GET", f"/v1/jobs/{job_id}/metrics", params={"since": since})

    def cancel(self, job_id: str) -> dict:
        return self._call("POST", f"/v1/jobs/{job_id}/cancel")

    def resume(self, job_id: str) -> dict:
        """A failed or cancelled job continues from its newest checkpoint (ApiError 409 otherwise)."""
        return self._call("POST", f"/v1/jobs/{job_id}/resume")

    def scale(self, job_id: str, replicas: int) -> dict:
        return self._call("POST", f"/v1/jobs/{job_id}/workers", json={"replicas": replicas})

    def health(self) -> dict:
        return self._call("GET", "/health")

    def close(self) -> None:
        self.http.close()
