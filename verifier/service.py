"""Run the verifier HTTP service: `python -m verifier.service --host H --port P --workers W`.

`--workers` is the grader pool size (processes that grade); uvicorn itself runs one async process,
since the grading work already happens in the pool. Other settings come from SIMKO_VERIFIER_* env.
"""
from __future__ import annotations

import argparse

import uvicorn

from verifier.app import create_app
from verifier.settings import VerifierSettings


def run_server(host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    """Serve until interrupted (blocking). Used by `simko serve verifier`. An argument left None
    keeps the environment's value (SIMKO_VERIFIER_HOST/PORT/WORKERS) or the default."""
    given = {"host": host, "port": port, "workers": workers}
    settings = VerifierSettings(**{k: v for k, v in given.items() if v is not None})
    # On SIGTERM in-flight requests get 5 s (a default grading deadline), then the pool is closed and
    # its graders SIGKILLed: all of it well inside the 10 s a `docker stop` or a scheduler allows.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info",
                timeout_graceful_shutdown=5)


def main(argv: list[str] | None = None) -> None:
    defaults = VerifierSettings()
    parser = argparse.ArgumentParser(prog="python -m verifier.service", description=__doc__)
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--port", type=int, default=defaults.port)
    parser.add_argument("--workers", type=int, default=defaults.workers, help="grader processes")
    args = parser.parse_args(argv)
    run_server(args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
