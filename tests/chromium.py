"""Headless Chromium driven over its DevTools protocol on a pipe (--remote-debugging-pipe): the browser reads
JSON commands from its fd 3 and writes replies and events to its fd 4, each message ending in a NUL byte. No
websocket client, no driver, nothing downloaded: Debian's chromium-headless-shell (or chromium) is enough.

    with Chromium() as browser:
        result = browser.open("file:///.../page.html", "document.title")   # waits for the load event
        browser.screenshot(path)
"""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

BINARIES = ("chromium-headless-shell", "chromium", "chromium-browser")


def find_binary() -> str | None:
    return next((path for name in BINARIES if (path := shutil.which(name))), None)


class BrowserError(RuntimeError):
    """The browser answered a command with an error, or did not answer in time."""


class Chromium:
    def __init__(self, binary: str | None = None, width: int = 1280, height: int = 1000, timeout: float = 30.0):
        self.binary = binary or find_binary()
        if self.binary is None:
            raise BrowserError(f"no headless Chromium on PATH (looked for {', '.join(BINARIES)})")
        self.width, self.height, self.timeout = width, height, timeout
        self._id, self._buffer, self._events = 0, b"", []

    def __enter__(self) -> Chromium:
        self._profile = tempfile.TemporaryDirectory(prefix="pic-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the shell hands our pipes to the browser as fds 3 (commands) and 4 (replies)
        args = ["--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-extensions", "--disable-background-networking", "--allow-file-access-from-files",
                f"--user-data-dir={self._profile.name}", f"--window-size={self.width},{self.height}", "about:blank"]
        self._process = subprocess.Popen(["sh", "-c", 'exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null',
                                          self.binary, *args], stdin=to_browser_r, stdout=from_browser_w,
                                         stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.call("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        self._profile.cleanup()

    def call(self, method: str, session: bool = False, **params) -> dict:
        """Send one command (to the page when `session`) and return its result."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def wait_for(self, event: str) -> dict:
        """The next event of this name from the page (events that came earlier are consumed)."""
        while True:
            for i, message in enumerate(self._events):
                if message.get("method") == event and message.get("sessionId") == self._session:
                    del self._events[: i + 1]
                    return message.get("params", {})
            self._events.append(self._read())

    def open(self, url: str, expression: str | None = None):
        """Load `url`, wait for its load event, and return the value of `expression` (a JS expression; a promise
        is awaited) evaluated in the page."""
        self._events.clear()
        navigated = self.call("Page.navigate", session=True, url=url)
        if navigated.get("errorText"):
            raise BrowserError(f"cannot open {url}: {navigated['errorText']}")
        self.wait_for("Page.loadEventFired")
        if expression is None:
            return None
        result = self.call("Runtime.evaluate", session=True, expression=expression, awaitPromise=True,
                           returnByValue=True, timeout=int(self.timeout * 1000))
        if "exceptionDetails" in result:
            raise BrowserError(f"{url}: the check script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", session=True, **params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def _read(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise BrowserError(f"the browser sent nothing for {self.timeout:.0f} s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError(f"the browser exited (code {self._process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)
