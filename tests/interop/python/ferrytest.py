"""What the Python interop tests share: where the build is, starting a ferry binary on a free
port and stopping it (exit 0 required: LSan), and Inbox, to await what a client received
without sleeping."""
import os
import re
import signal
import subprocess
import threading
import time

ROOT = os.environ.get("FERRY_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("FERRY_BUILD_DIR", "build-test"))


def binary(*parts):
    return os.path.join(BUILD, *parts)


class Server:
    """A ferry binary started with --port 0; port is read from its "listening on" line."""

    def __init__(self, path, *args, env=None):
        self.proc = subprocess.Popen([path, "--port", "0", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, **(env or {})))
        line = self.proc.stdout.readline()
        m = re.search(r"listening on https?://127\.0\.0\.1:(\d+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(os.path.basename(path) + " did not start: " + line +
                               self.proc.stderr.read())
        self.port = int(m.group(1))

    def stop(self, before_close=None):
        """SIGTERM; returns (exit code, stderr). before_close runs once the process is gone,
        before its pipes close (a reader thread finishing, say)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=10)
        finally:
            if before_close is not None:
                before_close()
            err = self.proc.stderr.read()
            self.proc.stdout.close()
            self.proc.stderr.close()
        return code, err


class Inbox:
    """Events a client received, awaited without sleeping."""

    def __init__(self):
        self.items = []
        self.cond = threading.Condition()

    def put(self, item):
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def _until(self, done, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s; got %r" % (what, self.items))
                self.cond.wait(left)

    def wait(self, n=1, timeout=5):
        """At least n items: all of them."""
        self._until(lambda: len(self.items) >= n, timeout, "fewer than %d items" % n)
        with self.cond:
            return list(self.items)

    def wait_for(self, pred, timeout=5):
        """At least one item matching pred: all that match."""
        self._until(lambda: any(pred(i) for i in self.items), timeout, "not received")
        with self.cond:
            return [i for i in self.items if pred(i)]

    def take(self):
        with self.cond:
            out, self.items = self.items, []
            return out
