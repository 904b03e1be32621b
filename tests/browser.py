"""Headless chromium (Debian's /usr/bin/chromium) driven over the DevTools protocol on a pipe.

Shared by the browser tests (tests/test_report.py, tests/test_report_browser.py,
tests/test_asv.py). Only the standard library: no websocket client, no driver.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")


class DevTools:
    """Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe): JSON
    messages ending in NUL, written to the browser's fd 3 and read from its fd 4. Needs only
    the standard library: no websocket client, no driver.

    `handlers` maps an event's method to a function called with the event as it is read
    (for events that must be answered, such as Fetch.requestPaused); a handler answers with
    post(), which does not wait for the reply."""

    def __init__(self, user_data_dir: Path, log: Path, window_size: str = "1280,900") -> None:
        to_browser_r, self._w = os.pipe()
        self._r, from_browser_w = os.pipe()

        def fds() -> None:  # in the child: its fds 3 and 4 are the pipe's ends
            a = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._log = open(log, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
             f"--user-data-dir={user_data_dir}", "--remote-debugging-pipe",
             f"--window-size={window_size}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            preexec_fn=fds, pass_fds=(3, 4))
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None
        self.handlers: dict[str, Callable[[dict[str, Any]], None]] = {}

    def post(self, method: str, params: dict[str, Any] | None = None) -> int:
        """Send a command without waiting for its reply; its id."""
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._w, json.dumps(message).encode() + b"\0")
        return self._id

    def send(self, method: str, params: dict[str, Any] | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        sent = self.post(method, params)
        reply = self.wait(lambda m: m.get("id") == sent, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def wait(self, match: Any, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                    handler = self.handlers.get(message["method"])
                    if handler is not None:
                        handler(message)
                if match(message):
                    return message
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buf += chunk

    def open_tab(self) -> None:
        """A new blank tab, attached (flat session), with the Page, Runtime, Log and Network
        events on: what every browser test starts from."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    def close(self) -> None:
        try:
            os.write(self._w, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            os.close(self._w)
            os.close(self._r)
            self._log.close()


def reported_problems(event: dict[str, Any]) -> str | None:
    """What the page itself reported as wrong in one DevTools event: a console error or
    warning, a logged error or warning, an uncaught exception, a failed load (None if the
    event is none of these). The tests add their own checks on requests."""
    method, params = event["method"], event["params"]
    if (method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert",
                                                                     "warning")) \
            or (method == "Log.entryAdded" and params["entry"]["level"] in ("error",
                                                                            "warning")) \
            or method in ("Runtime.exceptionThrown", "Network.loadingFailed"):
        return f"{method}: {json.dumps(params)[:300]}"
    return None


def evaluate(browser: DevTools, expression: str, timeout: float = 60.0) -> Any:
    """The value of a JavaScript expression in the page (a promise is awaited); an exception
    in it is an AssertionError that shows it."""
    reply = browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                              "awaitPromise": True}, timeout)
    if "exceptionDetails" in reply:
        raise AssertionError(f"{expression[:100]}: {json.dumps(reply['exceptionDetails'])[:500]}")
    return reply["result"].get("value")


@contextmanager
def offline_page(page: Path, workdir: Path, window_size: str = "1280,900"
                 ) -> Iterator[tuple[DevTools, list[str]]]:
    """Chromium showing the file `page` with the network off, after its load event: the
    browser is offline (Network.emulateNetworkConditions) and every http(s)/ws(s) request is
    failed by the test (Fetch) and its URL kept in the list yielded with the browser. The
    browser's events (console, exceptions, requests) are in `browser.events`."""
    browser = DevTools(workdir / "profile", workdir / "chromium.log", window_size=window_size)
    refused: list[str] = []

    def refuse(event: dict[str, Any]) -> None:
        params = event["params"]
        refused.append(params["request"]["url"])
        browser.post("Fetch.failRequest", {"requestId": params["requestId"],
                                           "errorReason": "InternetDisconnected"})

    browser.handlers["Fetch.requestPaused"] = refuse
    try:
        browser.open_tab()
        browser.send("Network.emulateNetworkConditions", {
            "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        browser.send("Fetch.enable", {"patterns": [{"urlPattern": f"{scheme}://*"} for scheme
                                                   in ("http", "https", "ws", "wss")]})
        browser.send("Page.navigate", {"url": page.resolve().as_uri()})
        browser.wait(lambda m: m.get("method") == "Page.loadEventFired", timeout=120)
        yield browser, refused
    finally:
        browser.close()
