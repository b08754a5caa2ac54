"""Debian's python3-socketio (5.7) client with the standalone server tools/ferry: two Python
clients join a room, one publishes, the other receives exactly that; a Python backend
publishes over HTTP (urllib) with the bearer token; allowlist refusals reach the client
through its acknowledgement; ferry exits 0 on SIGTERM (no leak under LSan)."""
import json
import os
import unittest
import urllib.error
import urllib.request

import socketio

import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ferrytest import Inbox, Server, binary  # noqa: E402  (this folder's shared helpers)

FERRY = binary("tools", "ferry", "ferry")
TOKEN = "py-token"


class FerryServerPython(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(FERRY, "--allow-publish", "message,typing",
                            env={"FERRY_PUBLISH_TOKEN": TOKEN})
        cls.url = "http://127.0.0.1:%d" % cls.server.port

    @classmethod
    def tearDownClass(cls):
        code, err = cls.server.stop()
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
        self.assertIs(r["ok"], True)  # the answer also carries the message id (relay history)
        got = ib.wait_for(lambda i: i[0] == "message")
        self.assertEqual(got[0][1][0], {"text": "from python ✓"})
        meta = got[0][1][1]  # the relay also gives each message an id and a time (history)
        self.assertEqual((meta["room"], meta["from"]), ("py", {"id": a.get_sid("/"), "name": "py-ann"}))
        self.assertTrue(meta["id"] and meta["ts"] > 0)
        refused = a.call("publish", {"room": "py", "event": "admin", "data": 1}, timeout=5)
        self.assertEqual(refused["ok"], False)
        self.assertIn("not allowed", refused["error"])

    def test_http_publish_from_a_python_backend(self):
        a, ia = self.client("py-cat")
        self.assertTrue(a.call("join", {"room": "backend"}, timeout=5)["ok"])
        status, body = self.publish_http({"room": "backend", "event": "deploy", "data": [1, 2]})
        self.assertEqual((status, body), (200, {"ok": True, "recipients": 1}))
        got = ia.wait_for(lambda i: i[0] == "deploy")
        # Recovery is on by default (--recovery-ms): the last argument is the event's offset.
        self.assertEqual(list(got[0][1])[:2], [[1, 2], {"room": "backend"}])
        self.assertRegex(list(got[0][1])[2], r"^\d+$")
        status, body = self.publish_http({"room": "backend", "event": "deploy", "data": 1},
                                         token="nope")
        self.assertEqual((status, body["error"]), (401, "unauthorized"))
        status, body = self.publish_http({"room": "backend", "data": 1})
        self.assertEqual((status, body["error"]), (400, "missing_field"))


if __name__ == "__main__":
    unittest.main()
