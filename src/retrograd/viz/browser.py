"""Headless Chromium driven over the DevTools protocol on a pipe (no websocket, no extra
package, no browser download): open a page, run script in it, read what it logged, take
screenshots at a given width. Used by the browser tests and docs/make_screenshots.py.

The binary is Debian's `chromium` (apt-get install chromium) or $RETROGRAD_CHROMIUM.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import select
import shutil
import subprocess
import tempfile
import time

_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--no-first-run",
          "--disable-extensions", "--hide-scrollbars", "--mute-audio",
          "--remote-debugging-pipe")


def find_chromium() -> str:
    """The Chromium binary; RuntimeError naming the package when there is none."""
    binary = os.environ.get("RETROGRAD_CHROMIUM") or shutil.which("chromium") \
        or shutil.which("chromium-browser")
    if not binary:
        raise RuntimeError("headless tests need Chromium: apt-get install chromium (or set "
                           "RETROGRAD_CHROMIUM to a Chromium binary)")
    return binary


class BrowserError(RuntimeError):
    """The browser answered a command with an error, or did not answer in time."""


class Chromium:
    """One headless browser; `with Chromium() as browser: page = browser.open(path)`."""

    def __init__(self, binary: str | None = None, timeout: float = 60.0):
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="retrograd-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the protocol's fixed descriptors, 3 (commands in) and 4 (answers out), set by the
        # shell's redirections, which survive its exec (bash: dash takes one-digit fds only)
        command = ["/bin/bash", "-c", f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}',
                   binary or find_chromium(), *_FLAGS, f"--user-data-dir={self._profile}",
                   "about:blank"]
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, pass_fds=(to_browser_r, from_browser_w))
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict] = []

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Ask the browser to quit, then make sure it has (it is our own child process)."""
        if self._process.poll() is None:
            try:
                self.send("Browser.close", timeout=5)
            except (BrowserError, OSError):
                pass
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    # ------------------------------------------------------------------ the protocol
    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float | None = None) -> dict:
        """Send one command and wait for its answer (events meanwhile are queued)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self._events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float | None = None) -> dict:
        """The next event `method` of the session (queued or arriving)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for k, event in enumerate(self._events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self._events.pop(k)
            self._events.append(self._read(deadline))

    def events(self, session: str) -> list[dict]:
        """Every queued event of the session (consumed)."""
        mine = [e for e in self._events if e.get("sessionId") == session]
        self._events = [e for e in self._events if e.get("sessionId") != session]
        return mine

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("the browser did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise BrowserError("the browser closed the protocol pipe")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    # ------------------------------------------------------------------ pages
    def open(self, path_or_url: str, width: int = 1280, height: int = 900) -> Page:
        """A new tab showing a file (or URL) at a viewport `width` x `height`, loaded."""
        url = str(path_or_url)
        if "://" not in url:
            url = pathlib.Path(url).resolve().as_uri()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target,
                                                      "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        page.resize(width, height)
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired", session)
        return page


class Page:
    """One tab: evaluate(), screenshot(), resize(), and what it logged (`problems()`)."""

    def __init__(self, browser: Chromium, session: str):
        self.browser, self.session = browser, session
        self.console_errors: list[str] = []
        self.requests: list[str] = []

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, self.session)

    def resize(self, width: int, height: int) -> None:
        """Emulate a viewport of that size (a phone's when width < 600)."""
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1,
                   "mobile": width < 600})

    def evaluate(self, expression: str):
        """The JSON value of a JavaScript expression in the page; BrowserError if it threw."""
        result = self.send("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"script failed: {text}")
        return result["result"].get("value")

    def screenshot(self, clip: dict | None = None) -> bytes:
        """PNG bytes of the viewport, or of `clip` {x, y, width, height} in page coordinates
        (scrolled into view as needed)."""
        params: dict = {"format": "png", "captureBeyondViewport": True}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.send("Page.captureScreenshot", params)["data"])

    def full_height(self) -> int:
        return int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)"))

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries so far; requests for
        anything but the page itself and data: URLs are collected in `requests`."""
        for event in self.browser.events(self.session):
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error",
                                                                                "assert"):
                self.console_errors.append(" ".join(str(a.get("value", a.get("description")))
                                                    for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                d = params.get("exceptionDetails", {})
                self.console_errors.append(d.get("exception", {}).get("description")
                                           or d.get("text", "exception"))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                self.console_errors.append(params["entry"].get("text", "error"))
            elif method == "Network.requestWillBeSent":
                self.requests.append(params.get("request", {}).get("url", ""))
        return list(self.console_errors)
