"""Debian's python3-socketio client over TLS (docs/tls.md): tools/ferry with a certificate from
a throw-away CA made with the openssl command; the client verifies it against that CA file
(requests' verify for https polling, which python-engineio also hands to websocket-client as
ca_certs for wss). Two Python clients exchange messages through a room on each transport; a
client that does not trust the CA is refused; ferry exits 0 on SIGTERM (no leak under LSan)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import requests
import socketio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ferrytest import Inbox, Server, binary  # noqa: E402  (this folder's shared helpers)

FERRY = binary("tools", "ferry", "ferry")


def make_pki(d):
    """A CA and a certificate for localhost/127.0.0.1 it signs, in folder d."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-days", "2", "-subj", "/CN=ferry python test CA",
        "-keyout", "ca.key", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    run("req", *ec, "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "server.pem", "-extfile", "server.ext")
    return [os.path.join(d, n) for n in ("ca.pem", "server.pem", "server.key")]


class FerryTlsPython(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ferry-tls-py-")
        cls.ca, cert, key = make_pki(cls.dir)
        cls.server = Server(FERRY, "--tls-cert", cert, "--tls-key", key,
                            "--allow-publish", "message")
        cls.url = "https://localhost:%d" % cls.server.port

    @classmethod
    def tearDownClass(cls):
        code, err = cls.server.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)
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

    def client(self, name, transports):
        session = requests.Session()
        session.verify = self.ca  # trust the test CA only
        # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE in the environment override a
        # session's verify: ignore the environment.
        session.trust_env = False
        sio = socketio.Client(reconnection=False, http_session=session)
        inbox = Inbox()
        sio.on("message", lambda *a: inbox.put(a))
        self.clients.append(sio)
        sio.connect(self.url, auth={"name": name}, transports=transports, wait_timeout=10)
        return sio, inbox

    def exchange(self, transports, room):
        a, ia = self.client("py-a", transports)
        b, ib = self.client("py-b", transports)
        self.assertTrue(a.call("join", {"room": room}, timeout=10)["ok"])
        self.assertTrue(b.call("join", {"room": room}, timeout=10)["ok"])
        for sender, inbox, text in ((a, ib, "a→b ✓"), (b, ia, "b→a ✓")):
            r = sender.call("publish", {"room": room, "event": "message",
                                        "data": {"text": text * 500}}, timeout=10)
            self.assertIs(r["ok"], True)  # the answer also carries the message id (relay history)
            got = inbox.wait_for(lambda i: i[0]["text"] == text * 500, timeout=10)
            self.assertEqual(len(got), 1)
        if transports is not None:
            self.assertEqual(a.transport(), transports[0])
        a.disconnect()
        b.disconnect()

    def test_wss(self):
        self.exchange(["websocket"], "py-wss")

    def test_https_polling(self):
        self.exchange(["polling"], "py-polling")

    def test_polling_upgraded(self):
        self.exchange(None, "py-upgrade")

    def test_untrusted_certificate_refused(self):
        sio = socketio.Client(reconnection=False)  # the system's CAs only
        self.clients.append(sio)
        with self.assertRaises(socketio.exceptions.ConnectionError):
            sio.connect(self.url, transports=["polling"], wait_timeout=10)


if __name__ == "__main__":
    unittest.main()
