"""Process-group helpers that need no second process."""
import threading
import time

from learner.distributed import wait_for_extension_lock


def test_stale_extension_lock_is_removed_after_the_wait(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    lock = tmp_path / "deepspeed_shm_comm" / "lock"
    lock.parent.mkdir()
    lock.touch()  # left by a process killed mid-build: nobody will remove it
    started = time.monotonic()
    wait_for_extension_lock(timeout_s=1.0)
    assert not lock.exists() and time.monotonic() - started >= 1.0


def test_a_lock_released_in_time_is_waited_for_not_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    lock = tmp_path / "deepspeed_shm_comm" / "lock"
    lock.parent.mkdir()
    lock.touch()
    released = threading.Timer(0.5, lock.unlink)  # a real build finishing
    released.start()
    started = time.monotonic()
    wait_for_extension_lock(timeout_s=30.0)
    released.join()
    assert 0.4 <= time.monotonic() - started < 5.0
