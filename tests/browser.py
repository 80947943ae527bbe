"""Load an HTML file in headless Chromium and report what a reader would see; stdlib only.

Chromium is driven with the Chrome DevTools Protocol (CDP) over `--remote-debugging-pipe`: it reads
commands from its fd 3 and writes responses and events to its fd 4, each message one JSON object
followed by a NUL byte. No port, no websocket, nothing to install.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--remote-debugging-pipe"]
NARROW_WIDTH = 390  # a phone's CSS width

# Fetched once the page has loaded: everything PageCheck reports about the document.
_SNAPSHOT_JS = """JSON.stringify({
  title: document.title,
  images: Array.from(document.images, i => [i.getAttribute('src') ? i.getAttribute('src').slice(0, 60) : '', i.naturalWidth]),
  ids: Array.from(document.querySelectorAll('[id]'), e => e.id),
  text: document.body ? document.body.innerText : '',
})"""


# What a reader sees of the layout at one width: does the page scroll sideways, where the answer box sits,
# whether every key/value table's values and every table's first column are in view.
_LAYOUT_JS = """JSON.stringify((() => {
  const w = document.documentElement.clientWidth, h = window.innerHeight;
  const box = document.querySelector('#answer');
  const r = box ? box.getBoundingClientRect() : null;
  const right = sel => Math.max(0, ...Array.from(document.querySelectorAll(sel), e => e.getBoundingClientRect().right));
  return {
    width: w, height: h,
    page_scrolls: document.documentElement.scrollWidth > w,
    answer_top: r ? r.top + window.scrollY : -1, answer_bottom: r ? r.bottom + window.scrollY : -1,
    kv_value_right: right('table.kv td'),
    first_column_right: right('.scroll td:first-child'),
  };
})())"""


class Layout(NamedTuple):
    width: int
    height: int
    page_scrolls: bool
    answer_top: float  # -1: no answer box
    answer_bottom: float
    kv_value_right: float  # the rightmost edge of any key/value table's value cell
    first_column_right: float  # … of any scrolling table's first column


class PageCheck(NamedTuple):
    title: str
    images: list[tuple[str, int]]  # (first 60 chars of src, naturalWidth); 0 means it did not decode
    ids: list[str]
    console_errors: list[str]
    horizontal_scroll_at_390: bool
    text: str
    layouts: dict[int, Layout] = {}  # width → layout at that width (1280 and 390)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


class _Cdp:
    """One CDP connection over the pipe pair; events seen while waiting for a response go to `on_event`."""

    def __init__(self, write_fd: int, read_fd: int, deadline: float, stderr_path: Path) -> None:
        self.write_fd, self.read_fd, self.deadline, self.stderr_path = write_fd, read_fd, deadline, stderr_path
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict] = []

    def _fail(self, what: str, exc: type[Exception] = RuntimeError) -> Exception:
        tail = self.stderr_path.read_text(errors="replace")[-2000:] if self.stderr_path.exists() else ""
        return exc(f"{what}; chromium stderr (tail):\n{tail}")

    def _recv(self, waiting_for: str) -> dict:
        while b"\0" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                raise self._fail(f"timed out waiting for {waiting_for}", TimeoutError)
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise self._fail(f"chromium closed the DevTools pipe while waiting for {waiting_for}")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session  # flat mode: one pipe, the target chosen per message
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self.write_fd, data):]
        while True:
            reply = self._recv(method)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method: str, session: str) -> None:
        """Wait for an event, including one already buffered by an earlier `call`."""
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event["method"] == method and event.get("sessionId") == session:
                    return
            seen = len(self.events)
            message = self._recv(method)
            if "method" in message:
                self.events.append(message)

    def poll(self, expression: str, session: str, what: str) -> None:
        """Evaluate `expression` until it is true, within the deadline."""
        while not self.evaluate(expression, session):
            if time.monotonic() > self.deadline:
                raise self._fail(f"timed out waiting for {what}", TimeoutError)
            time.sleep(0.05)

    def evaluate(self, expression: str, session: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluating {expression[:60]!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")


def _errors(events: list[dict]) -> list[str]:
    """Everything a reader would count as broken: console.error, uncaught exceptions, browser errors, failed loads."""
    urls, out = {}, []
    for e in events:
        method, p = e["method"], e.get("params", {})
        if method == "Network.requestWillBeSent":
            urls[p["requestId"]] = p["request"]["url"]
        elif method == "Runtime.consoleAPICalled" and p["type"] == "error":
            args = [str(a.get("value", a.get("description", a.get("type")))) for a in p["args"]]
            out.append("console.error: " + " ".join(args))
        elif method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            out.append("uncaught: " + d.get("exception", {}).get("description", d.get("text", "")))
        elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
            entry = p["entry"]
            out.append(f"log ({entry['source']}): {entry['text']} {entry.get('url', '')}".rstrip())
        elif method == "Network.loadingFailed":
            out.append(f"load failed: {urls.get(p['requestId'], '?')}: {p['errorText']}")
    return out


def check_page(html_path: Path, screenshot: Path, width: int = 1280, height: int = 900,
               timeout: float = 60) -> PageCheck:
    """Open `html_path` at width×height, wait until it and all its images have loaded, and report on it.

    The screenshot covers the whole page, not only the first screen. Raises TimeoutError if the page,
    or any image, is not done within `timeout` seconds.
    """
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("no chromium, chromium-browser or google-chrome on PATH")
    deadline = time.monotonic() + timeout
    tmp = Path(tempfile.mkdtemp(prefix="reglab-chromium-"))
    stderr_path = tmp / "stderr.log"
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    proc = None
    try:
        with open(stderr_path, "wb") as stderr:
            # The pipe ends must be fds 3 and 4 in Chromium. Popen can only place stdin/stdout, so hand them
            # over as 0 and 1 and let sh move them: no preexec_fn (unsafe once JAX/BLAS threads exist) and
            # no dup2 ordering hazards when os.pipe() happened to return 3 or 4.
            proc = subprocess.Popen(
                ["/bin/sh", "-c", 'exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null', chromium, *FLAGS,
                 f"--user-data-dir={tmp / 'profile'}", "about:blank"],
                stdin=to_browser_r, stdout=from_browser_w, stderr=stderr,
                start_new_session=True,  # its own process group, so the renderer and GPU helpers die with it
            )
        # Only Chromium may hold these ends: otherwise EOF would never arrive when it dies.
        os.close(to_browser_r)
        os.close(from_browser_w)
        to_browser_r = from_browser_w = -1
        cdp = _Cdp(to_browser_w, from_browser_r, deadline, stderr_path)

        target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            cdp.call(f"{domain}.enable", session=session)
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        cdp.call("Emulation.setDeviceMetricsOverride", metrics, session)
        # Overlay scrollbars, as on a phone: otherwise a tall page loses 15px of width to the scrollbar, and the
        # full-page screenshot (which resizes the view to the page) is laid out narrower than the page was.
        cdp.call("Emulation.setScrollbarsHidden", {"hidden": True}, session)

        del cdp.events[:]  # anything about about:blank is not about the page
        nav = cdp.call("Page.navigate", {"url": Path(html_path).resolve().as_uri()}, session)
        if nav.get("errorText"):
            raise RuntimeError(f"navigating to {html_path} failed: {nav['errorText']}")
        cdp.wait_event("Page.loadEventFired", session)
        cdp.poll("Array.from(document.images).every(i => i.complete)", session, "every image to finish loading")
        snap = json.loads(cdp.evaluate(_SNAPSHOT_JS, session))

        # Whole page: clip to the content size and let Chromium render beyond the viewport.
        size = cdp.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": max(size["width"], 1), "height": max(size["height"], 1), "scale": 1}
        shot = cdp.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip},
                        session)
        Path(screenshot).write_bytes(base64.b64decode(shot["data"]))

        # mobile=False on purpose: with mobile=True a page without a viewport <meta> is laid out at 980px and
        # zoomed out, which would hide overflow instead of revealing it.
        cdp.call("Emulation.setDeviceMetricsOverride", metrics, session)  # the screenshot resized the view
        layouts = {width: Layout(**json.loads(cdp.evaluate(_LAYOUT_JS, session)))}
        cdp.call("Emulation.setDeviceMetricsOverride", {**metrics, "width": NARROW_WIDTH, "height": 844}, session)
        scrolls = bool(cdp.evaluate(
            "document.documentElement.scrollWidth > document.documentElement.clientWidth", session))
        layouts[NARROW_WIDTH] = Layout(**json.loads(cdp.evaluate(_LAYOUT_JS, session)))

        try:
            cdp.call("Browser.close")
        except (RuntimeError, TimeoutError):
            pass  # it may close the pipe before answering; the finally below makes sure it is gone
        return PageCheck(title=snap["title"], images=[(s, int(w)) for s, w in snap["images"]], ids=snap["ids"],
                         console_errors=_errors(cdp.events), horizontal_scroll_at_390=scrolls, text=snap["text"],
                         layouts=layouts)
    finally:
        os.close(to_browser_w)  # EOF on its command pipe also makes Chromium shut down
        to_browser_w = -1
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # helpers left behind, or the browser itself if it hung
            except ProcessLookupError:
                pass
            proc.wait()
        for fd in (to_browser_r, to_browser_w, from_browser_r, from_browser_w):
            if fd >= 0:
                os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)
