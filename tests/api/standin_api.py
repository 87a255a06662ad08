"""`uvicorn --factory tests.api.standin_api:create`: the real job API (settings from SIMKO_API_*),
whose launcher starts tests/api/standin_controller.py in place of the real controller program."""
import sys

from services.api.app import ApiSettings, create_app
from services.api.controllers import ControllerLauncher
from services.control.jobs import JobRecord


class StandInLauncher(ControllerLauncher):
    def argv(self, record: JobRecord) -> list[str]:
        return [sys.executable, "-m", "tests.api.standin_controller", "--job-id", record.id, "--redis-url", self.redis_url]


def create():
    settings = ApiSettings()
    return create_app(settings, launcher=StandInLauncher(settings.redis_url))
