"""Container health probe (standard library only, so it runs in every image).

    python deploy/healthcheck.py http://127.0.0.1:8000/health tcp://127.0.0.1:6379 raylet

Exit 0 when every check passes: `http(s)://...` answers 200, `tcp://host:port` accepts a
connection, `raylet` finds a Ray raylet process in this container.
"""
from __future__ import annotations

import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit


def http_ok(url: str, timeout_s: float = 4.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def tcp_ok(url: str, timeout_s: float = 2.0) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=timeout_s):
            return True
    except OSError:
        return False


def raylet_running() -> bool:
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "raylet":
                return True
        except OSError:  # the process exited while we looked
            continue
    return False


def check(target: str) -> bool:
    if target.startswith(("http://", "https://")):
        return http_ok(target)
    if target.startswith("tcp://"):
        return tcp_ok(target)
    if target == "raylet":
        return raylet_running()
    raise SystemExit(f"healthcheck: unknown check {target!r} (http://..., tcp://host:port, raylet)")


def main(targets: list[str]) -> int:
    if not targets:
        raise SystemExit(__doc__)
    failed = [t for t in targets if not check(t)]
    for target in failed:
        print(f"unhealthy: {target}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
