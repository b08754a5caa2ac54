"""Debian's python3-socketio (5.7) client with the standalone server tools/ferry: two Python
clients join a room, one publishes, the other receives exactly that; a Python backend
publishes over HTTP (urllib) with the bearer token; allowlist refusals reach the client
through its acknowledgement; ferry exits 0 on SIGTERM (no leak under LSan)."""
import json
import os
import re
import signal
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.request

import socketio

ROOT = os.environ.get("FERRY_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("FERRY_BUILD_DIR", "build-test"))
FERRY = os.path.join(BUILD, "tools", "ferry", "ferry")
TOKEN = "py-token"


class Inbox:
    """Events a client received, awaited without sleeping."""

    def __init__(self):
        self.items = []
        self.cond = threading.Condition()

    def put(self, item):
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def wait_for(self, pred, timeout=5):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(pred(i) for i in self.items):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("not received; got %r" % self.items)
                self.cond.wait(left)
            return [i for i in self.items if pred(i)]


class FerryServerPython(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = dict(os.environ, FERRY_PUBLISH_TOKEN=TOKEN)
        cls.proc = subprocess.Popen([FERRY, "--port", "0", "--allow-publish", "message,typing"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=env)
        line = cls.proc.stdout.readline()
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if not m:
            cls.proc.kill()
            raise RuntimeError("ferry did not start: " + line + cls.proc.stderr.read())
        cls.url = "http://127.0.0.1:%s" % m.group(1)

    @classmethod
    def tearDownClass(cls):
        cls.proc.send_signal(signal.SIGTERM)
        code = cls.proc.wait(timeout=10)
        err = cls.proc.stderr.read()
        cls.proc.stdout.close()
        cls.proc.stderr.close()
        if code != 0:
            raise AssertionError("ferry exits cleanly: " + err[-3000:])

    def setUp(self):
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            try:
                c.disconnect()
            except Exception:
                pass

    def client(self, name, transports=None):
        sio = socketio.Client(reconnection=False)
        inbox = Inbox()
        for ev in ("message", "typing", "deploy", "presence"):
            sio.on(ev, (lambda e: lambda *a: inbox.put((e, a)))(ev))
        self.clients.append(sio)
        sio.connect(self.url, auth={"name": name}, transports=transports, wait_timeout=5)
        return sio, inbox

    def publish_http(self, body, token=TOKEN):
        req = urllib.request.Request(self.url + "/api/publish", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        if token is not None:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=5) as res:
                return res.status, json.loads(res.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def test_relay_between_python_clients(self):
        a, ia = self.client("py-ann", ["polling"])
        b, ib = self.client("py-bob", ["websocket"])
        self.assertTrue(a.call("join", {"room": "py"}, timeout=5)["ok"])
        joined = b.call("join", {"room": "py"}, timeout=5)
        self.assertEqual(sorted(m["name"] for m in joined["members"]), ["py-ann", "py-bob"])
        ia.wait_for(lambda i: i[0] == "presence" and i[1][0].get("joined", {}).get("name") == "py-bob")
        r = a.call("publish", {"room": "py", "event": "message", "data": {"text": "from python ✓"}},
                   timeout=5)
        self.assertEqual(r, {"ok": True})
        got = ib.wait_for(lambda i: i[0] == "message")
        self.assertEqual(got[0][1][0], {"text": "from python ✓"})
        self.assertEqual(got[0][1][1], {"room": "py", "from": {"id": a.get_sid("/"), "name": "py-ann"}})
        refused = a.call("publish", {"room": "py", "event": "admin", "data": 1}, timeout=5)
        self.assertEqual(refused["ok"], False)
        self.assertIn("not allowed", refused["error"])

    def test_http_publish_from_a_python_backend(self):
        a, ia = self.client("py-cat")
        self.assertTrue(a.call("join", {"room": "backend"}, timeout=5)["ok"])
        status, body = self.publish_http({"room": "backend", "event": "deploy", "data": [1, 2]})
        self.assertEqual((status, body), (200, {"ok": True, "recipients": 1}))
        got = ia.wait_for(lambda i: i[0] == "deploy")
        self.assertEqual(list(got[0][1]), [[1, 2], {"room": "backend"}])
        status, body = self.publish_http({"room": "backend", "event": "deploy", "data": 1},
                                         token="nope")
        self.assertEqual((status, body["error"]), (401, "unauthorized"))
        status, body = self.publish_http({"room": "backend", "data": 1})
        self.assertEqual((status, body["error"]), (400, "missing_field"))


if __name__ == "__main__":
    unittest.main()
