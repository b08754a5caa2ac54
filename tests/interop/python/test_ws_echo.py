"""Debian's python3-websockets (10.x, asyncio) against examples/ws-echo: text and binary
echo, permessage-deflate negotiated by the client's default offer, ping/pong, a message over
the limit closed with 1009, and a clean exit of the server (no leak under LSan)."""
import asyncio
import os
import unittest

import websockets

import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ferrytest import Server, binary  # noqa: E402  (this folder's shared helpers)

WS_ECHO = binary("examples", "ws-echo", "ferry-ws-echo")


class WsEcho(Server):
    def __init__(self, *args):
        super().__init__(WS_ECHO, *args)
        self.url = "ws://127.0.0.1:%d/" % self.port


class WsEchoTest(unittest.TestCase):
    def run_with(self, args, coro):
        srv = WsEcho(*args)
        try:
            asyncio.run(asyncio.wait_for(coro(srv.url), 20))
        finally:
            code, err = srv.stop()
        self.assertEqual(code, 0, "ws-echo exits cleanly: " + err[-2000:])

    def test_text_binary_ping(self):
        async def go(url):
            async with websockets.connect(url, compression=None) as ws:
                await ws.send("héllo ✓")
                self.assertEqual(await ws.recv(), "héllo ✓")
                await ws.send(bytes([0, 1, 2, 255]))
                self.assertEqual(await ws.recv(), bytes([0, 1, 2, 255]))
                big = os.urandom(200000)
                await ws.send(big)
                self.assertEqual(await ws.recv(), big)
                pong = await ws.ping(b"are you there")
                await asyncio.wait_for(pong, 5)
                # Fragmented message, sent as an iterable of fragments.
                await ws.send(["frag", "ment", "ed ✓"])
                self.assertEqual(await ws.recv(), "fragmented ✓")
            self.assertEqual(ws.close_code, 1000)
        self.run_with([], go)

    def test_permessage_deflate(self):
        async def go(url):
            async with websockets.connect(url) as ws:  # offers permessage-deflate by default
                exts = [e.name for e in ws.extensions]
                self.assertEqual(exts, ["permessage-deflate"])
                text = "compress me please " * 2000
                for _ in range(3):  # context takeover across messages
                    await ws.send(text)
                    self.assertEqual(await ws.recv(), text)
        self.run_with(["--deflate"], go)

    def test_too_big_is_1009(self):
        async def go(url):
            async with websockets.connect(url, compression=None, max_size=None) as ws:
                await ws.send(b"x" * 1001)
                with self.assertRaises(websockets.exceptions.ConnectionClosed) as cm:
                    await ws.recv()
                self.assertEqual(cm.exception.code, 1009)
        self.run_with(["--max-message", "1000"], go)


if __name__ == "__main__":
    unittest.main()
