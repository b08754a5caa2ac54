// The WebSocket fragment limit counts the pieces a message arrives in, not empty frames (issue
// 9, defect 4): a message of exactly 65,536 fragments plus the empty final frame that some
// clients add (Autobahn's own client does) is whole at the default max_fragments, on
// ferry_ws_route (examples/ws-echo) and on Engine.IO sessions (examples/echo); one non-empty
// fragment more is refused with close 1009. A raw client builds every frame by hand.
import { test } from "node:test";
import assert from "node:assert/strict";
import { WsConn, OP, encodeFrame } from "../conformance/wsconn.mjs";
import { bin, startServer } from "../lib/server.mjs";

const LIMIT = 65536; // the documented default max_fragments

// payload split into 1-byte fragments, then an empty final frame (or not).
function fragmented(payload, { op, emptyFinal = true }) {
  const frames = [];
  for (let i = 0; i < payload.length; i++) {
    const last = !emptyFinal && i === payload.length - 1;
    frames.push(encodeFrame({ op: i === 0 ? op : OP.CONT, payload: payload.subarray(i, i + 1), fin: last }));
  }
  if (emptyFinal) frames.push(encodeFrame({ op: OP.CONT, payload: Buffer.alloc(0), fin: true }));
  return Buffer.concat(frames);
}

async function nextOf(c, types, ms = 60000) {
  for (;;) {
    const ev = await c.next(ms);
    if (ev.type === "timeout") throw new Error(`no ${types} within ${ms} ms`);
    if (types.includes(ev.type)) return ev;
  }
}

test("ferry_ws_route: 65,536 fragments + an empty final frame is one message; 65,537 is 1009", { timeout: 240000 }, async () => {
  const srv = await startServer(bin("examples/ws-echo/ferry-ws-echo"), ["--port", "0"]);
  try {
    const payload = Buffer.alloc(LIMIT, 0).map((_, i) => (i * 13 + 5) & 0xff);
    const c = await WsConn.open({ port: srv.port, timeoutMs: 60000 });
    await c.write(fragmented(payload, { op: OP.BINARY }));
    const ev = await nextOf(c, ["message", "close", "end"]);
    assert.equal(ev.type, "message", `got ${JSON.stringify(ev)}`);
    assert.equal(ev.binary, true);
    assert.ok(Buffer.compare(ev.data, payload) === 0, "echoed whole and unchanged");
    // Exactly the limit without the empty frame still passes, too.
    await c.write(fragmented(payload, { op: OP.BINARY, emptyFinal: false }));
    const ev2 = await nextOf(c, ["message", "close", "end"]);
    assert.equal(ev2.type, "message");
    assert.equal(ev2.data.length, LIMIT);
    c.sock.destroy();

    const over = await WsConn.open({ port: srv.port, timeoutMs: 60000 });
    await over.write(fragmented(Buffer.alloc(LIMIT + 1, 0x61), { op: OP.BINARY }));
    const ev3 = await nextOf(over, ["message", "close", "end"]);
    assert.equal(ev3.type, "close", `got ${JSON.stringify(ev3).slice(0, 200)}`);
    assert.equal(ev3.code, 1009);
    over.sock.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test("Engine.IO over WebSocket (examples/echo): 65,536 fragments + an empty final frame is one message", { timeout: 240000 }, async () => {
  const srv = await startServer(bin("examples/echo/ferry-echo"), ["--port", "0"]);
  try {
    const c = await WsConn.open({ port: srv.port, path: "/engine.io/?EIO=4&transport=websocket", timeoutMs: 60000 });
    const open = await nextOf(c, ["message"]);
    assert.match(open.data.toString(), /^0\{"sid"/);
    // "4" + text: an Engine.IO message packet of LIMIT bytes in LIMIT fragments.
    const text = Buffer.from("4" + "k".repeat(LIMIT - 1));
    await c.write(fragmented(text, { op: OP.TEXT }));
    const ev = await nextOf(c, ["message", "close", "end"]);
    assert.equal(ev.type, "message", `got ${JSON.stringify(ev).slice(0, 200)}`);
    assert.equal(ev.data.toString(), text.toString());
    c.sock.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});
