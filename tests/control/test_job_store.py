"""The job store on a real redis-server: concurrent writers of one record lose nothing."""
import threading

import pytest

from services.control.jobs import JobRecord, JobState, JobStore, UnknownJob, new_job_id


def test_a_controllers_step_writes_never_undo_an_apis_state_write(redis_url):
    # What a controller (step after step) and the job API (cancel: state) do to one record at once.
    # A plain read-modify-write put back the state the step writer had read: a cancel was recorded
    # as still running, and the job then "failed" when the API's forced kill ended it.
    store = JobStore(redis_url)
    job_id = new_job_id("race")
    store.create(JobRecord(id=job_id, name="race", state=JobState.RUNNING, spec={}, run_dir="/x"))
    stop = threading.Event()

    def controller() -> None:
        writer, step = JobStore(redis_url), 0
        while not stop.is_set():
            step += 1
            writer.update(job_id, step=step)

    thread = threading.Thread(target=controller)
    thread.start()
    try:
        api = JobStore(redis_url)
        lost = 0
        for pid in range(1, 301):
            api.update(job_id, controller_pid=pid, state=JobState.CANCELLING if pid % 2 else JobState.RUNNING)
            record = api.get(job_id)
            lost += record.controller_pid != pid
    finally:
        stop.set()
        thread.join(timeout=30)
    assert lost == 0
    assert store.get(job_id).step > 0  # the controller's writes landed too


def test_updating_an_unknown_job_names_it(redis_url):
    with pytest.raises(UnknownJob, match="no-such-job"):
        JobStore(redis_url).update("no-such-job", step=1)


@pytest.mark.parametrize("state", [JobState.CANCELLING, JobState.CANCELLED])
def test_a_starting_controller_keeps_a_cancel_recorded_before_it(redis_url, state):
    # The controller's first write (services/control/controller.py: main) is RUNNING plus its pid;
    # a cancel the API recorded while the process started must survive it, or a controller that
    # then dies is reconciled as FAILED instead of CANCELLED.
    store = JobStore(redis_url)
    job_id = new_job_id("early-cancel")
    store.create(JobRecord(id=job_id, name="early-cancel", state=state, spec={}, run_dir="/x"))
    guard = frozenset({JobState.CANCELLING, JobState.CANCELLED})
    record = store.update(job_id, state=JobState.RUNNING, controller_pid=4242, keep_state_if=guard)
    assert (record.state, record.controller_pid) == (state, 4242)
    assert store.get(job_id).state is state


def test_the_state_guard_lets_other_states_change(redis_url):
    store = JobStore(redis_url)
    job_id = new_job_id("queued")
    store.create(JobRecord(id=job_id, name="queued", state=JobState.QUEUED, spec={}, run_dir="/x"))
    record = store.update(job_id, state=JobState.RUNNING, keep_state_if=frozenset({JobState.CANCELLING}))
    assert record.state is JobState.RUNNING


def test_controller_main_does_not_write_running_over_a_cancel(redis_url, monkeypatch, tmp_path):
    # Only the training itself is replaced (it is not what this checks, and a real job takes a
    # minute): what main() writes around it goes to the real store.
    from services.control import controller

    store = JobStore(redis_url)
    job_id = new_job_id("main-cancel")
    spec = {"model": {"path": "builtin:tiny"}, "data": {"train": "builtin:tiny"}}
    store.create(JobRecord(id=job_id, name="main-cancel", state=JobState.CANCELLING, spec=spec,
                           run_dir=str(tmp_path)))
    seen = {}

    def fake_run_job(spec, *, job_id, run_dir, ray_address, store):
        seen["state"] = store.get(job_id).state
        return JobState.CANCELLED

    monkeypatch.setattr(controller, "run_job", fake_run_job)
    assert controller.main(["--job-id", job_id, "--redis-url", redis_url]) == 0
    assert seen["state"] is JobState.CANCELLING
    assert store.get(job_id).state is JobState.CANCELLED
