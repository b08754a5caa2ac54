"""Debian's python3-socketio (5.7) client against tests/servers/ferry-test-sio, over polling,
WebSocket only and polling + upgrade: events both ways, acks both ways with timeouts,
namespaces over one session, auth accepted and refused, rooms and broadcast with three
clients (the right ones receive, exactly once), binary arguments mixed with JSON, disconnect
reasons, and a clean exit of the server (no leak under LSan).

python-socketio 5.7 hands no reason to a client's disconnect handler; the reasons are checked
on the server's side, and the client's side checks that its handler ran."""
import json
import os
import threading
import time
import unittest

import socketio

import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ferrytest import Inbox, Server, binary  # noqa: E402  (this folder's shared helpers)

SERVER = binary("tests", "servers", "ferry-test-sio")
TRANSPORTS = {"polling": ["polling"], "websocket": ["websocket"], "upgrade": None}



def in_order(sio):
    """python-engineio 4.x hands every engine message to a new thread (run_async=True), so a
    binary event's attachment can reach python-socketio before the packet that announces it,
    which then fails to parse (seen as "invalid literal for int(): b'\\x00'"). Node's client delivers
    in order; make this one do so too. Only for tests whose
    handlers just queue what they get: a handler that blocks would block the reader thread."""
    trigger = sio.eio._trigger_event

    def trigger_in_order(event, *args, **kwargs):
        if event == "message":
            kwargs["run_async"] = False
        return trigger(event, *args, **kwargs)

    sio.eio._trigger_event = trigger_in_order
    return sio


class SioServer:
    """ferry-test-sio with its JSON event lines collected by a reader thread."""

    def __init__(self, *args):
        self.server = Server(SERVER, *args)
        self.proc = self.server.proc
        self.url = "http://127.0.0.1:%d" % self.server.port
        self.events = []
        self.taken = set()
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("{"):
                with self.cond:
                    self.events.append(json.loads(line))
                    self.cond.notify_all()

    def next(self, pred, timeout=5):
        """The first event matching pred that no earlier next() returned."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, e in enumerate(self.events):
                    if i not in self.taken and pred(e):
                        self.taken.add(i)
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no matching server event; last: %r" % self.events[-5:])
                self.cond.wait(left)

    def stop(self):
        return self.server.stop(before_close=lambda: self.reader.join(5))


class SocketIOInterop:
    """The cases; mixed into one TestCase class per transport below."""

    transport = None

    @classmethod
    def setUpClass(cls):
        cls.srv = SioServer("--ping-interval", "1000", "--ping-timeout", "5000")

    @classmethod
    def tearDownClass(cls):
        code, err = cls.srv.stop()
        if code != 0:
            raise AssertionError("ferry-test-sio exits cleanly: " + err[-3000:])

    def setUp(self):
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            try:
                c.disconnect()
            except Exception:
                pass

    def client(self, namespaces=None, auth=None, events=()):
        sio = socketio.Client(reconnection=False)
        inbox = Inbox()
        for nsp in namespaces or ["/"]:
            for ev in ("auth", *events):
                sio.on(ev, (lambda e, n: lambda *a: inbox.put((n, e, a)))(ev, nsp), namespace=nsp)
        self.clients.append(sio)
        sio.connect(self.srv.url, namespaces=namespaces or ["/"], auth=auth,
                    transports=TRANSPORTS[self.transport], wait_timeout=5)
        inbox.wait(len(namespaces or ["/"]))  # the "auth" event of each namespace
        inbox.take()
        if self.transport == "upgrade":
            deadline = time.monotonic() + 5
            while sio.eio.current_transport != "websocket" and time.monotonic() < deadline:
                time.sleep(0.02)  # python-engineio has no upgrade event to await
        return sio, inbox

    def connect_event(self, sio, nsp="/"):
        sid = sio.get_sid(nsp)
        return self.srv.next(lambda e: e["event"] == "connect" and e["id"] == sid)

    def test_events_both_ways(self):
        sio, inbox = self.client(events=("message-back",))
        c = self.connect_event(sio)
        want = "websocket" if self.transport != "polling" else "polling"
        self.assertEqual(sio.transport(), want)
        for i in range(10):
            sio.emit("message", (i, "two", {"3": [True, None]}, "é🙂"))
        got = inbox.wait(10)
        # python-engineio runs each received message on a thread of its own, so the client may
        # hand them over out of order (order on the wire is tested with the Node clients).
        self.assertEqual(sorted(a for (_, _, a) in got),
                         [(i, "two", {"3": [True, None]}, "é🙂") for i in range(10)])
        ev = self.srv.next(lambda e: e["event"] == "event" and e["id"] == c["id"]
                           and e["name"] == "message")
        self.assertEqual(ev["args"], [0, "two", {"3": [True, None]}, "é🙂"])

    def test_acks_both_ways(self):
        sio, inbox = self.client(events=("ask-result",))
        self.assertEqual(sio.call("message-with-ack", ("a", {"b": 2}), timeout=5), ("a", {"b": 2}))
        # A client ack the server never answers (no handler answers "nothing").
        with self.assertRaises(socketio.exceptions.TimeoutError):
            sio.call("nothing", timeout=0.3)
        # The server asks; the client's handler's return value is the answer.
        sio.on("question", lambda x: ("answer", x * 2))
        sio.emit("ask", ("question", 3000, 21))
        (_, _, (result,)), = inbox.wait(1)
        self.assertEqual(result, {"status": "ok", "args": ["answer", 42]})

    def test_server_ack_timeout(self):
        sio, inbox = self.client(events=("ask-result",))
        done = threading.Event()

        def slow(x):
            done.wait(3)  # answers only after the server's 300 ms timeout
            return "late"

        sio.on("slowq", slow)
        t0 = time.monotonic()
        sio.emit("ask", ("slowq", 300, 1))
        (_, _, (result,)), = inbox.wait(1)
        done.set()
        self.assertEqual(result, {"status": "timeout", "args": None})
        self.assertGreaterEqual(time.monotonic() - t0, 0.25)
        # The late answer is ignored and the socket keeps working.
        self.assertEqual(sio.call("message-with-ack", "ok", timeout=5), "ok")

    def test_binary_mixed_with_json(self):
        sio, inbox = self.client(events=("message-back", "binary"))
        in_order(sio)
        big = os.urandom(100000)
        sio.emit("message", ("x", b"\x00\x01\xff", {"deep": [b"hi", 5]}, big))
        (_, _, back), = inbox.wait(1)
        self.assertEqual(back, ("x", b"\x00\x01\xff", {"deep": [b"hi", 5]}, big))
        inbox.take()
        sio.emit("binary")
        (_, _, args), = inbox.wait(1)
        self.assertEqual(args, ("text", b"\x01\x02\x03", {"nested": b"\xff", "n": 1}))
        self.assertEqual(sio.call("message-with-ack", (b"\x09", "j"), timeout=5), (b"\x09", "j"))

    def test_namespaces_share_one_session(self):
        sio, inbox = self.client(namespaces=["/", "/custom"], events=("message-back",))
        a = self.connect_event(sio, "/")
        b = self.connect_event(sio, "/custom")
        self.assertEqual(a["sid"], b["sid"])
        sio.emit("message", "to custom", namespace="/custom")
        (nsp, _, args), = inbox.wait(1)
        self.assertEqual((nsp, args), ("/custom", ("to custom",)))

    def test_auth_accepted_and_refused(self):
        sio, _ = self.client(namespaces=["/admin"], auth={"token": "secret"})
        c = self.connect_event(sio, "/admin")
        self.assertEqual(c["auth"], {"token": "secret"})
        bad = socketio.Client(reconnection=False)
        errors = Inbox()
        bad.on("connect_error", lambda *a: errors.put(a), namespace="/admin")
        self.clients.append(bad)
        with self.assertRaises(socketio.exceptions.ConnectionError):
            bad.connect(self.srv.url, namespaces=["/admin"], auth={"token": "wrong"},
                        transports=TRANSPORTS[self.transport], wait_timeout=2)
        self.assertIn("Not authorized", json.dumps(errors.wait(1)))
        self.srv.next(lambda e: e["event"] == "refused" and e["nsp"] == "/admin")

    def test_disconnect_reasons(self):
        sio, _ = self.client()
        c = self.connect_event(sio)
        sio.disconnect()
        d = self.srv.next(lambda e: e["event"] == "disconnect" and e["id"] == c["id"], timeout=15)
        if self.transport == "polling":
            # Usually "client namespace disconnect"; under load python-engineio's polling
            # disconnect sometimes never delivers its last POST (open question, see the stop
            # notes), and the session then ends at its pong deadline.
            self.assertIn(d["reason"], ("client namespace disconnect", "ping timeout"))
        else:
            # python-engineio 4.3 closes the WebSocket right after queuing "41" for its writer
            # thread, so the DISCONNECT packet may never be written: then the server sees the
            # transport close, as the Node reference server would.
            self.assertIn(d["reason"], ("client namespace disconnect", "transport close"))
        sio2, _ = self.client()
        gone = threading.Event()
        sio2.on("disconnect", gone.set)
        c2 = self.connect_event(sio2)
        sio2.emit("disconnect-me", True)
        self.assertTrue(gone.wait(5), "the client saw the server's disconnect")
        d2 = self.srv.next(lambda e: e["event"] == "disconnect" and e["id"] == c2["id"])
        self.assertEqual(d2["reason"], "forced server close")

    def test_rooms_and_broadcast_three_clients(self):
        # A namespace of its own: sockets of other tests may still be leaving "/".
        nsp = "/dyn-rooms-" + self.transport
        cs = [self.client(namespaces=[nsp], events=("hello", "multi", "from-a", "not-red"))
              for _ in range(3)]
        (a, ia), (b, ib), (c, ic) = cs
        for s, _ in cs:
            in_order(s)  # sync() relies on the broadcast being seen before the ack reply

        def sync():
            # A round trip per client: the server queues its reply after any broadcast.
            for s, _ in cs:
                s.call("message-with-ack", "sync", timeout=5, namespace=nsp)
            return [i.take() for _, i in cs]

        self.assertEqual(a.call("join", "red", timeout=5, namespace=nsp), [a.get_sid(nsp), "red"])
        b.call("join", "red", timeout=5, namespace=nsp)
        c.call("join", "blue", timeout=5, namespace=nsp)
        self.assertEqual(a.call("to", ("red", "hello", 1), timeout=5, namespace=nsp), 2)
        ga, gb, gc = sync()
        self.assertEqual(ga, [(nsp, "hello", (1,))])
        self.assertEqual(gb, [(nsp, "hello", (1,))])
        self.assertEqual(gc, [])
        a.call("join", "blue", timeout=5, namespace=nsp)
        self.assertEqual(b.call("to-many", (["red", "blue"], "multi", b"\x01"), timeout=5, namespace=nsp), 3)
        for got in sync():
            self.assertEqual(got, [(nsp, "multi", (b"\x01",))])
        self.assertEqual(a.call("broadcast", ("from-a", "x"), timeout=5, namespace=nsp), 2)
        ga, gb, gc = sync()
        self.assertEqual((ga, gb, gc), ([], [(nsp, "from-a", ("x",))], [(nsp, "from-a", ("x",))]))
        self.assertEqual(c.call("except", ("red", "not-red"), timeout=5, namespace=nsp), 1)
        self.assertEqual(sync(), [[], [], [(nsp, "not-red", ())]])


class PollingTest(SocketIOInterop, unittest.TestCase):
    transport = "polling"


class WebSocketTest(SocketIOInterop, unittest.TestCase):
    transport = "websocket"


class UpgradeTest(SocketIOInterop, unittest.TestCase):
    transport = "upgrade"


if __name__ == "__main__":
    unittest.main()
