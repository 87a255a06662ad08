"""Imported by every Python interpreter started with this folder on PYTHONPATH (Python's `site`
imports `sitecustomize` at start-up). services.wire.lifetime.children_die_with_me puts it there so
interpreters that libraries spawn (vLLM's EngineCore and workers via multiprocessing 'spawn') die
with their parent, like the ones we start ourselves. Standard library only, and as little as can be:
it runs before anything else in those processes.
"""
import ctypes
import importlib.util
import os
import signal
import sys


def _die_with_parent() -> None:
    if os.environ.get("SIMKO_DIE_WITH_PARENT") != "1" or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before the prctl: we were already re-parented to init
        os._exit(128 + int(signal.SIGKILL))


def _chain_next_sitecustomize() -> None:
    """Shadowing is not replacing: run the sitecustomize this one hides (a distribution's), if any."""
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        candidate = os.path.join(entry or ".", "sitecustomize.py")
        if os.path.abspath(entry or ".") != here and os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_simko_next_sitecustomize", candidate)
            if spec is not None and spec.loader is not None:
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


_die_with_parent()
_chain_next_sitecustomize()
