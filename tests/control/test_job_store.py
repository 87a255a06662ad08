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
