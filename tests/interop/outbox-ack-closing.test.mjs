// An ack answer given while the session is closing over its send queue's bound (issue 14, the
// "close" backpressure policy; tests/e2e/backpressure-chaos "chromium-polling: every ask
// answered 23 !== 26"). The session is closed at the next flush, not at once: packets that
// arrive before it (the rest of the same POST) are still taken by the outbox, and the app
// answers their acks, but the engine refuses anything queued on a session that overflowed.
// Such an answer must be kept for the recovered socket like any other: the server took the
// emit (its CONNECT answer says so, and the client never sends it again), so the kept answer
// is the only way the ack can ever run. Before the fix it was dropped: the ack never ran.
//
// Long-polling with no GET pending: whatever the server queues stays queued, so the queue's
// size is exactly what the test sends.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WS from "ws";
import { startSio } from "../lib/sio.mjs";

const BOUND = 2000;
let srv;
before(async () => {
  srv = await startSio(["--recovery", "10000", "--queue-bytes", String(BOUND), "--log-level", "info"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "ferry-test-sio exits 0 (no leak)");
});

const RS = "\x1e";
async function poll(base, sid) {
  const r = await fetch(`${base}&sid=${sid}`, { signal: AbortSignal.timeout(10000) });
  return { status: r.status, packets: (await r.text()).split(RS) };
}
async function post(base, sid, packets) {
  const r = await fetch(`${base}&sid=${sid}`, { method: "POST", body: packets.join(RS), signal: AbortSignal.timeout(10000) });
  return { status: r.status, text: await r.text() };
}

// A raw WebSocket session: frames in a queue, pings answered.
async function rawWs(url) {
  const ws = new WS(url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket");
  const q = [];
  ws.on("message", (d) => {
    const s = d.toString();
    if (s === "2") return ws.send("3");
    q.push(s);
  });
  await new Promise((res, rej) => (ws.once("open", res), ws.once("error", rej)));
  const next = async (pred, ms = 10000) => {
    for (const end = Date.now() + ms; ; ) {
      const i = q.findIndex(pred);
      if (i >= 0) return q.splice(i, 1)[0];
      if (Date.now() > end) throw new Error(`no frame matching ${pred} within ${ms} ms; have ${JSON.stringify(q)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await next((s) => s[0] === "0");
  return { ws, q, next, send: (s) => ws.send(s) };
}

test("an ack answer given while the session closes over its queue's bound is kept: the recovered socket gets it once", async () => {
  const base = `${srv.url}/socket.io/?EIO=4&transport=polling`;
  const open = await fetch(base, { signal: AbortSignal.timeout(10000) });
  const sid = JSON.parse((await open.text()).slice(1)).sid;
  assert.equal((await post(base, sid, ['40{"ferryOutbox":{}}'])).status, 200);
  const got = (await poll(base, sid)).packets;
  const a = JSON.parse(got.find((p) => p.startsWith("40{")).slice(2));
  assert.equal(a.ferryOutbox, 0);
  // Emit 1 for an offset to recover with.
  assert.equal((await post(base, sid, ['42["message","m0",1]'])).status, 200);
  const back = (await poll(base, sid)).packets.find((p) => p.startsWith('42["message-back","m0"'));
  const offset = JSON.parse(back.slice(2)).pop();
  // One POST of three emits asking for acks. Answer 0 is queued on an empty queue; answer 1
  // goes over the bound: queued, and the session closes at the next flush; answer 2 comes
  // before that flush.
  const gone = srv.disconnectOf(a.sid);
  const r = await post(base, sid, [`420["message-with-ack","${"x".repeat(BOUND / 2)}",2]`, `421["message-with-ack","${"y".repeat(BOUND / 2 + 100)}",3]`, '422["message-with-ack","c",4]']);
  assert.equal(r.status, 200, `the POST was taken (${r.text})`);
  await gone;
  await srv.next((e) => e.event === "event" && e.id === a.sid && e.args[0] === "c");
  assert.match(srv.stderr(), /send queue over its bound/, "the session closed over its bound");
  assert.match(srv.stderr(), /ack 2 answered as the session closes: kept for the recovered socket/, "logged (info)");
  // The client read answer 0 (say) and awaits 1 and 2 (answers given again are not paced by
  // the bound: together they stay under it here).
  const d = await rawWs(srv.url);
  try {
    d.send(`40${JSON.stringify({ pid: a.pid, offset, ferryOutbox: { acks: [1, 2] } })}`);
    const b = JSON.parse((await d.next((s) => s.startsWith("40{"))).slice(2));
    assert.equal(b.sid, a.sid, "recovered");
    assert.equal(b.ferryOutbox, 4, "the server took the three emits: the client sends none again");
    d.send('42999["message-with-ack","sync",0]'); // answered after the answers given again
    await d.next((s) => s.startsWith("43999["));
    const again = d.q.filter((s) => /^43\d+\[/.test(s)).map((s) => Number(/^43(\d+)/.exec(s)[1]));
    assert.deepEqual(again, [1, 2], "every answer the client awaits, once each, in order");
  } finally {
    d.ws.close();
  }
});
