"""services/wire/lifetime.py on real processes (fast: no vLLM, no Ray): each way a child is started
(exec wrapper, a Python child, multiprocessing fork and spawn as libraries such as vLLM use them)
dies with a SIGKILLed owner."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.reliability.owners import REPO, describe, kill_and_collect
from tests.reliability.process_table import kill_tagged, new_tag, tagged_env

OWNER = """
import multiprocessing, subprocess, sys, time
from services.wire.lifetime import child_env, children_die_with_me, wrap_argv

def nap(ready):
    ready.set()  # running (unpickled, imported): only the parent-death signal can end it now
    time.sleep(3600)

if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "exec":  # a program we do not write (redis-server): through the exec wrapper
        subprocess.Popen(wrap_argv(["sleep", "3600"]))
    elif kind == "python":  # our own Python child: die_with_parent() first thing
        subprocess.Popen([sys.executable, "-c", "from services.wire.lifetime import die_with_parent; "
                          "die_with_parent(); import time; time.sleep(3600)"], env=child_env())
    else:  # what a library starts (vLLM's EngineCore): multiprocessing fork or spawn, and a grandchild
        children_die_with_me()
        ctx = multiprocessing.get_context(kind)
        ready = ctx.Event()
        ctx.Process(target=nap, args=(ready,)).start()
        assert ready.wait(120)
    print("up", flush=True)
    time.sleep(3600)
"""


@pytest.mark.parametrize("kind", ["exec", "python", "fork", "spawn"])
def test_children_die_with_a_sigkilled_owner(kind, tmp_path):
    tag = new_tag()
    script = tmp_path / "owner.py"  # a file: multiprocessing 'spawn' re-imports the parent's __main__
    script.write_text(OWNER)
    owner = subprocess.Popen([sys.executable, str(script), kind], cwd=REPO, env=tagged_env(tag, {**os.environ,
                             "PYTHONPATH": str(REPO)}),
                             stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "up"
        # spawn: the child plus multiprocessing's resource tracker
        before, left = kill_and_collect(tag, owner.pid, signal.SIGKILL, expect_at_least=2)
    finally:
        kill_tagged(tag)
        owner.wait(timeout=10)
    assert not left, describe(before, left)


def test_a_child_whose_parent_is_already_gone_exits():
    """The fork/prctl race: a child that finds another parent than the one announced exits at once."""
    code = subprocess.run([sys.executable, "-c", "from services.wire.lifetime import die_with_parent; "
                           "die_with_parent(expected_parent=1); print('still here')"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert code.returncode == 128 + signal.SIGKILL and "still here" not in code.stdout


def test_the_reaper_kills_what_the_parent_death_signal_cannot_reach(tmp_path):
    """An owner starts the reaper, then a grandchild that escapes into its own session (as a
    raylet's agent would, out of reach of any parent-death signal of ours); SIGKILL the owner:
    the grandchild carrying the owner's token is killed too."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    pid_file = tmp_path / "grandchild.pid"
    owner_code = (
        "import subprocess, sys, time\n"
        "from services.wire.lifetime import start_reaper\n"
        "start_reaper()\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(600)\n")
    owner = subprocess.Popen([sys.executable, "-c", owner_code], cwd=str(REPO))
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert owner.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    grandchild = psutil.Process(int(pid_file.read_text()))
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    gone, alive = psutil.wait_procs([grandchild], timeout=10)
    for p in alive:
        p.kill()
    assert not alive, "the escaped grandchild outlived its SIGKILLed owner"
