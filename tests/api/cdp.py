"""A real headless Chromium (Debian's `chromium`) driven over the DevTools protocol from Python
(test helper): start it with a fresh profile, open tabs, navigate, evaluate JavaScript, type,
screenshot. Flags per /work/.library/env/machines/python.md: without the background-networking
ones Chromium keeps trying to reach Google's hosts, which this machine's closed network refuses."""
from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio",
         "--hide-scrollbars", "--window-size=1280,1000"]


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    pytest.skip("chromium is not installed (scripts/setup.sh installs Debian's chromium)")


class Tab:
    """One page target over its own DevTools websocket."""

    def __init__(self, ws_url: str):
        self._connection = connect(ws_url, max_size=None, open_timeout=30)
        self.ws = self._connection.__enter__()  # closed in close()
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == msg_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def navigate(self, url: str, timeout: float = 60) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", timeout=timeout)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30, interval: float = 0.2) -> bool:
        """Poll a JS expression until it is truthy (in JavaScript's sense: a DOM node counts)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(f"!!({expression})")
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} still falsy after {timeout}s; page text: "
                                   f"{self.evaluate('document.body ? document.body.innerText : null')!r:.600}")
            time.sleep(interval)

    def type_into(self, selector: str, text: str) -> None:
        """Focus an input and type as a keyboard would (Input.insertText)."""
        assert self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                             f"if (!e) return false; e.focus(); return true; }})()"), selector
        self.call("Input.insertText", text=text)

    def click(self, selector: str) -> None:
        assert self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                             f"if (!e) return false; e.click(); return true; }})()"), selector

    def screenshot(self, path: Path) -> Path:
        """The whole page (beyond the viewport) as PNG."""
        height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)")) or 1000
        self.call("Emulation.setDeviceMetricsOverride", width=1280, height=min(height, 4000), deviceScaleFactor=1,
                  mobile=False)
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def js_errors(self) -> list[str]:
        """Uncaught exceptions and console.error calls seen since the last navigation."""
        out = []
        for event in self.events:
            if event.get("method") == "Runtime.exceptionThrown":
                out.append(json.dumps(event["params"]["exceptionDetails"])[:500])
            elif event.get("method") == "Runtime.consoleAPICalled" and event["params"]["type"] == "error":
                out.append(json.dumps(event["params"]["args"])[:500])
        return out

    def close(self) -> None:
        self._connection.__exit__(None, None, None)


class Chromium:
    def __init__(self, workdir: Path):
        self.profile = workdir / "chromium-profile"  # fresh: no cache, no session storage from elsewhere
        self.profile.mkdir(parents=True)
        self.proc = subprocess.Popen([chromium_binary(), *FLAGS, f"--user-data-dir={self.profile}",
                                      "--remote-debugging-port=0", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=open(workdir / "chromium.log", "wb"))
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.proc.poll() is None, f"chromium exited: {(workdir / 'chromium.log').read_text()[-2000:]}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])
        self.tabs: list[Tab] = []

    def new_tab(self) -> Tab:
        """A new page target: its own sessionStorage (a token typed in another tab is not there)."""
        target = httpx.put(f"http://127.0.0.1:{self.port}/json/new?about:blank", timeout=30).json()
        tab = Tab(target["webSocketDebuggerUrl"])
        self.tabs.append(tab)
        return tab

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for tab in self.tabs:
            try:
                tab.close()
            except Exception:  # noqa: BLE001 - the browser is being killed anyway
                pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
