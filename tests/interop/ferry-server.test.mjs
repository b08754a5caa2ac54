// tools/ferry's relay with the official socket.io-client: rooms (join/leave), publish between
// clients within the allowlists, presence, and HTTP publishes reaching the right sockets.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { io } from "socket.io-client";
import { startServer, bin, once } from "../lib/server.mjs";

const TOKEN = "relay-token";
let srv;
const sockets = [];

before(async () => {
  srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--allow-publish",
    "message,typing", "--allow-join", "lobby,r1,r2,r3,team-*", "--max-rooms", "4",
    "--publish-token", TOKEN]);
});
after(async () => {
  for (const s of sockets) s.disconnect();
  assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak, no sanitizer report)");
});

async function client(name, opts = {}) {
  const s = io(srv.url, { forceNew: true, reconnection: false, auth: { name }, ...opts });
  sockets.push(s);
  await once(s, "connect");
  return s;
}

// Emit with an ack, resolve with the answer.
function call(s, event, arg) {
  return s.timeout(5000).emitWithAck(event, arg);
}

// Collect every event a socket receives (except presence when asked).
function recorder(s) {
  const got = [];
  s.onAny((event, ...args) => got.push([event, ...args]));
  return got;
}

// Wait until pred(got) holds, checking on every event the socket receives.
function waitUntil(s, got, pred, ms = 5000) {
  if (pred(got)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      s.offAny(check);
      reject(new Error(`timeout; got ${JSON.stringify(got)}`));
    }, ms);
    const check = () => {
      // onAny listeners run in order: ours runs after the recorder's.
      if (pred(got)) {
        clearTimeout(t);
        s.offAny(check);
        resolve();
      }
    };
    s.onAny(check);
  });
}

const only = (got, event) => got.filter((g) => g[0] === event);

for (const transports of [["polling"], ["websocket"], ["polling", "websocket"]]) {
  test(`publish reaches the others in the room exactly once (${transports})`, async () => {
    const opts = { transports };
    const [a, b, c] = [await client("ann", opts), await client("bob", opts),
      await client("cid", opts)];
    const [ga, gb, gc] = [recorder(a), recorder(b), recorder(c)];
    assert.equal((await call(a, "join", { room: "r1" })).ok, true);
    assert.equal((await call(b, "join", { room: "r1" })).ok, true);
    assert.equal((await call(c, "join", { room: "r2" })).ok, true);
    assert.equal((await call(a, "join", { room: "r3" })).ok, true);
    assert.equal((await call(b, "join", { room: "r3" })).ok, true);
    assert.equal((await call(c, "join", { room: "r3" })).ok, true);

    const data = { text: "héllo ✓", n: [1, 2, { deep: true }] };
    // "message" is kept in the history (--history-events' default): the answer names its id.
    const sent = await call(a, "publish", { room: "r1", event: "message", data });
    assert.deepEqual(Object.keys(sent), ["ok", "id"]);
    assert.equal(sent.ok, true);
    // A marker in r3, where all three are, published after: once everyone has it, anything
    // from the first publish would have arrived before it (one session delivers in order).
    assert.deepEqual(await call(a, "publish", { room: "r3", event: "typing", data: "mark" }),
      { ok: true });
    await waitUntil(b, gb, (g) => only(g, "typing").length === 1);
    await waitUntil(c, gc, (g) => only(g, "typing").length === 1);

    const msgs = only(gb, "message");
    assert.equal(msgs.length, 1, "bob got the message once");
    assert.deepEqual(msgs[0][1], data);
    const { ts, ...meta } = msgs[0][2];
    assert.deepEqual(meta, { room: "r1", from: { id: a.id, name: "ann" }, id: sent.id });
    assert.ok(Math.abs(ts - Date.now()) < 60000, "ts is the server's time in ms");
    assert.equal(only(gc, "message").length, 0, "cid is not in r1");
    assert.equal(only(ga, "message").length, 0, "the sender does not get its own publish");
    assert.equal(only(ga, "typing").length, 0);

    // Bob leaves r1: the next publish to r1 does not reach him.
    assert.deepEqual(await call(b, "leave", { room: "r1" }), { ok: true, room: "r1" });
    await call(a, "publish", { room: "r1", event: "message", data: "after leave" });
    await call(a, "publish", { room: "r3", event: "typing", data: "mark2" });
    await waitUntil(b, gb, (g) => only(g, "typing").length === 2);
    assert.equal(only(gb, "message").length, 1, "nothing after leaving");
    for (const s of [a, b, c]) s.disconnect();
  });
}

test("allowlists: events, rooms, membership, room count and bad arguments", async () => {
  const a = await client("ann");
  const no = async (event, arg, re) => {
    const r = await call(a, event, arg);
    assert.equal(r.ok, false, `${event} ${JSON.stringify(arg)}`);
    assert.match(r.error, re, `${event} ${JSON.stringify(arg)}`);
  };
  await no("join", { room: "secret" }, /not allowed/);
  assert.equal((await call(a, "join", { room: "team-blue" })).ok, true, "prefix pattern");
  await no("publish", { room: "team-blue", event: "admin", data: 1 }, /not allowed/);
  await no("publish", { room: "lobby", event: "message", data: 1 }, /not in/);
  await no("publish", { room: "team-blue", event: "disconnect", data: 1 }, /reserve/);
  await no("join", {}, /room/);
  await no("join", { room: 42 }, /room/);
  await no("join", "lobby", /room/);
  await no("join", { room: "" }, /empty/);
  await no("publish", { room: "team-blue", data: 1 }, /event/);
  await no("leave", { room: "lobby" }, /not in/);
  await no("whatever", { room: "lobby" }, /unknown/);
  // --max-rooms 4: team-blue + 3 more, then refused.
  for (const r of ["team-1", "team-2", "team-3"]) assert.equal((await call(a, "join", { room: r })).ok, true);
  await no("join", { room: "team-4" }, /at most 4/);
  // Joining twice is fine and does not count twice.
  assert.equal((await call(a, "join", { room: "team-1" })).ok, true);
  assert.equal((await call(a, "publish", { room: "team-blue", event: "message", data: null })).ok, true);
  a.disconnect();
});

test("presence: join answer lists members, others hear joins and leaves", async () => {
  const a = await client("ann");
  const ga = recorder(a);
  const ja = await call(a, "join", { room: "lobby" });
  assert.deepEqual(ja.members, [{ id: a.id, name: "ann" }]);
  const b = await client("bob");
  const jb = await call(b, "join", { room: "lobby" });
  assert.deepEqual(jb.members.map((m) => m.name).sort(), ["ann", "bob"]);
  await waitUntil(a, ga, (g) => only(g, "presence").length === 1);
  assert.deepEqual(only(ga, "presence")[0][1], { room: "lobby", joined: { id: b.id, name: "bob" } });
  const bid = b.id;
  b.disconnect(); // leaving by disconnecting announces "left" too
  await waitUntil(a, ga, (g) => only(g, "presence").length === 2);
  assert.deepEqual(only(ga, "presence")[1][1], { room: "lobby", left: { id: bid, name: "bob" } });
  a.disconnect();
});

test("join {members: false} answers without the list and the count (a crowd joining at once)", async () => {
  const [a, b] = [await client("ann"), await client("bob")];
  assert.equal((await call(a, "join", { room: "team-crowd" })).members.length, 1);
  const jb = await call(b, "join", { room: "team-crowd", members: false });
  assert.equal(jb.ok, true);
  assert.equal(jb.room, "team-crowd");
  assert.equal("members" in jb || "count" in jb, false);
  // Another client's own room is still refused (the check no longer walks the room).
  assert.match((await call(b, "join", { room: a.id, members: false })).error, /not allowed/);
  assert.equal((await call(b, "join", { room: "team-crowd", members: true })).members.length, 2);
  a.disconnect();
  b.disconnect();
});

test("HTTP publish reaches every socket in the room, and only them", async () => {
  const [a, b, c] = [await client("ann"), await client("bob"), await client("cid")];
  const [ga, gb, gc] = [recorder(a), recorder(b), recorder(c)];
  await call(a, "join", { room: "team-x" });
  await call(b, "join", { room: "team-x" });
  await call(c, "join", { room: "team-y" });
  const post = (body) => fetch(`${srv.url}/api/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  // Backends may publish any event name (the allowlist is for clients).
  let res = await post({ room: "team-x", event: "deploy", data: { v: 2 } });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { ok: true, recipients: 2 });
  res = await post({ room: "team-y", event: "deploy", data: "y" });
  assert.equal(res.status, 200);
  await waitUntil(a, ga, (g) => only(g, "deploy").length === 1);
  await waitUntil(b, gb, (g) => only(g, "deploy").length === 1);
  await waitUntil(c, gc, (g) => only(g, "deploy").length === 1);
  // Recovery is on by default (--recovery-ms): each relayed event ends with its offset.
  assert.deepEqual(only(ga, "deploy")[0].slice(1, 3), [{ v: 2 }, { room: "team-x" }]);
  assert.match(only(ga, "deploy")[0][3], /^\d+$/, "the recovery offset is the last argument");
  assert.deepEqual(only(gc, "deploy")[0].slice(1, 3), ["y", { room: "team-y" }]);
  // A socket's own room is its id: a backend can address one client.
  res = await post({ room: b.id, event: "private", data: 7 });
  assert.equal(res.status, 200);
  await waitUntil(b, gb, (g) => only(g, "private").length === 1);
  assert.equal(only(ga, "private").length, 0);
  for (const s of [a, b, c]) s.disconnect();
});

test("a bad nickname is refused at connect", async () => {
  const s = io(srv.url, { forceNew: true, reconnection: false, auth: { name: "x".repeat(100) } });
  sockets.push(s);
  const err = await once(s, "connect_error");
  assert.match(err.message, /name/);
});

test("environment: no joins at all, presence off, any event; HTTP publish to a socket's own room", async () => {
  const s2 = await startServer(bin("tools/ferry/ferry"), ["--port", "0"], {
    env: { FERRY_ALLOW_JOIN: "", FERRY_ALLOW_PUBLISH: "*", FERRY_PRESENCE: "0",
      FERRY_PUBLISH_TOKEN: "env-token" },
  });
  try {
    const a = io(s2.url, { forceNew: true, reconnection: false, auth: { name: "ann" } });
    sockets.push(a);
    await once(a, "connect");
    const r = await call(a, "join", { room: "lobby" });
    assert.equal(r.ok, false);
    assert.match(r.error, /not allowed/);
    // Any event may be published, but only to rooms one is in: here only its own.
    assert.equal((await call(a, "publish", { room: a.id, event: "anything", data: 1 })).ok, true);
    const got = recorder(a);
    const res = await fetch(`${s2.url}/api/publish`, {
      method: "POST",
      headers: { authorization: "Bearer env-token" },
      body: JSON.stringify({ room: a.id, event: "hello", data: [1, "two"] }),
    });
    assert.deepEqual(await res.json(), { ok: true, recipients: 1 });
    await waitUntil(a, got, (g) => only(g, "hello").length === 1);
    assert.deepEqual(only(got, "hello")[0].slice(1, 3), [[1, "two"], { room: a.id }]);
    assert.equal(only(got, "presence").length, 0);
    a.disconnect();
  } finally {
    assert.equal(await s2.stop(), 0);
  }
});

test("SIGTERM with clients connected: they are told, ferry exits 0", async () => {
  const s3 = await startServer(bin("tools/ferry/ferry"), ["--port", "0"]);
  const clients = [];
  for (const transports of [["polling"], ["websocket"], ["polling", "websocket"]]) {
    const c = io(s3.url, { forceNew: true, reconnection: false, transports, auth: { name: "x" } });
    sockets.push(c);
    await once(c, "connect");
    assert.equal((await call(c, "join", { room: "lobby" })).ok, true);
    clients.push(c);
  }
  const reasons = clients.map((c) => once(c, "disconnect", 10000));
  assert.equal(await s3.stop(), 0, "clean exit with sessions open");
  for (const r of await Promise.all(reasons)) assert.match(String(r), /transport (close|error)/);
});

test("publish rate: a burst over --publish-rate is refused, the bucket refills", async () => {
  const s4 = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--allow-publish",
    "message", "--publish-rate", "5"]);
  try {
    const a = io(s4.url, { forceNew: true, reconnection: false, auth: { name: "fast" } });
    sockets.push(a);
    await once(a, "connect");
    await call(a, "join", { room: "lobby" });
    // 12 publishes in one go: 5 saved up, at most one more refilled meanwhile (5 per second).
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) =>
      call(a, "publish", { room: "lobby", event: "message", data: i })));
    const ok = answers.filter((r) => r.ok).length;
    assert.ok(ok >= 5 && ok <= 7, `${ok} accepted`);
    for (const r of answers.filter((r) => !r.ok)) assert.match(r.error, /rate limit: at most 5/);
    assert.equal(answers.slice(0, 5).every((r) => r.ok), true, "the first five pass");
    // Receipts have a bucket of their own: the empty publish bucket does not stop them, and
    // a burst of them is bounded the same way.
    const receipts = await Promise.all(Array.from({ length: 12 }, () =>
      call(a, "receipt", { room: "lobby", id: answers[0].id })));
    const rok = receipts.filter((r) => r.ok).length;
    assert.ok(rok >= 5 && rok <= 7, `${rok} receipts accepted`);
    for (const r of receipts.filter((r) => !r.ok)) assert.match(r.error, /at most 5 receipts per second/);
    // After a refill interval (200 ms per token at 5/s) one more passes: wait for it by asking.
    let later;
    for (let i = 0; i < 20; i++) {
      later = await call(a, "publish", { room: "lobby", event: "message", data: "later" });
      if (later.ok) break;
      await new Promise((r) => setTimeout(r, 100)); // bounded: 20 × 100 ms
    }
    assert.equal(later.ok, true, "the bucket refills");
    a.disconnect();
  } finally {
    assert.equal(await s4.stop(), 0);
  }
});

test("history: a joiner gets the room's last --history messages, oldest first, bounded", async () => {
  const s5 = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--allow-publish",
    "message,typing", "--history", "3", "--publish-token", TOKEN]);
  try {
    const mk = async (name) => {
      const c = io(s5.url, { forceNew: true, reconnection: false, auth: { name } });
      sockets.push(c);
      await once(c, "connect");
      return c;
    };
    const a = await mk("ann");
    assert.deepEqual((await call(a, "join", { room: "h1" })).history, [], "empty at first");
    const ids = [];
    for (let i = 1; i <= 5; i++)
      ids.push((await call(a, "publish", { room: "h1", event: "message", data: { text: `m${i}` } })).id);
    assert.equal(new Set(ids).size, 5, "every id differs");
    // typing is not a history event: no id, not kept.
    assert.deepEqual(await call(a, "publish", { room: "h1", event: "typing", data: true }), { ok: true });
    // A backend's message is kept too, without "from".
    const res = await fetch(`${s5.url}/api/publish`, { method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ room: "h1", event: "message", data: { text: "from backend" } }) });
    assert.equal(res.status, 200);
    const b = await mk("bob");
    const j = await call(b, "join", { room: "h1" });
    assert.deepEqual(j.history.map((h) => h.data.text), ["m4", "m5", "from backend"], "last 3, oldest first");
    assert.deepEqual(j.history.map((h) => h.id).slice(0, 2), ids.slice(3));
    assert.deepEqual(j.history[0].from, { id: a.id, name: "ann" });
    assert.equal(j.history[0].event, "message");
    assert.equal(j.history[2].from, undefined);
    assert.ok(j.history.every((h) => typeof h.ts === "number"));
    // Other rooms have their own history; joining again answers it again.
    assert.deepEqual((await call(b, "join", { room: "h2" })).history, []);
    assert.equal((await call(b, "join", { room: "h1" })).history.length, 3);

    // Receipts: bob got m5, ann (its publisher) hears it; unknown ids and strangers are refused.
    const ga = recorder(a);
    assert.deepEqual(await call(b, "receipt", { room: "h1", id: ids[4] }), { ok: true });
    await waitUntil(a, ga, (g) => only(g, "receipt").length === 1);
    assert.deepEqual(only(ga, "receipt")[0][1], { room: "h1", id: ids[4], by: { id: b.id, name: "bob" } });
    let r = await call(b, "receipt", { room: "h1", id: ids[0] });
    assert.equal(r.ok, false);
    assert.match(r.error, /no message/, "dropped from the history");
    r = await call(b, "receipt", { room: "h1" });
    assert.match(r.error, /'id'/);
    const c = await mk("cid");
    r = await call(c, "receipt", { room: "h1", id: ids[4] });
    assert.match(r.error, /not in room/);
    // A receipt for one's own message is answered but not echoed.
    assert.deepEqual(await call(a, "receipt", { room: "h1", id: ids[4] }), { ok: true });
    for (const s of [a, b, c]) s.disconnect();
  } finally {
    assert.equal(await s5.stop(), 0);
  }
});

test("history: --history-bytes bounds all rooms together; --history 0 turns it off", async () => {
  const s6 = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--allow-publish",
    "chat:*", "--history-events", "chat:*", "--history-bytes", "4096",
    "--max-rooms", "64", "--publish-rate", "0"]);
  const s7 = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--allow-publish",
    "message"], { env: { FERRY_HISTORY: "0" } });
  try {
    const a = io(s6.url, { forceNew: true, reconnection: false, auth: { name: "ann" } });
    sockets.push(a);
    await once(a, "connect");
    // 40 rooms x 2 messages of ~300 bytes: far over 4096 bytes in all.
    for (let i = 0; i < 40; i++) {
      await call(a, "join", { room: `b${i}` });
      for (let k = 0; k < 2; k++)
        assert.equal((await call(a, "publish", { room: `b${i}`, event: "chat:msg", data: "x".repeat(300) })).ok, true);
    }
    let kept = 0;
    for (let i = 0; i < 40; i++) kept += (await call(a, "join", { room: `b${i}` })).history.length;
    assert.ok(kept >= 2 && kept <= 12, `${kept} entries kept within 4096 bytes`);
    const last = (await call(a, "join", { room: "b39" })).history;
    assert.equal(last.length, 2, "the newest are the ones kept");
    assert.equal(last[0].event, "chat:msg");
    assert.equal((await call(a, "join", { room: "b0" })).history.length, 0, "the oldest went first");
    a.disconnect();

    const z = io(s7.url, { forceNew: true, reconnection: false, auth: { name: "zed" } });
    sockets.push(z);
    await once(z, "connect");
    const j = await call(z, "join", { room: "lobby" });
    assert.equal(j.ok, true);
    assert.equal(j.history, undefined, "no history field when off");
    assert.deepEqual(await call(z, "publish", { room: "lobby", event: "message", data: 1 }), { ok: true });
    z.disconnect();
  } finally {
    assert.equal(await s6.stop(), 0);
    assert.equal(await s7.stop(), 0);
  }
});

test("--new-session-rate: bad values stop ferry with one line", async () => {
  for (const value of ["x", "5/0", "5/x", "1000001", "-1", ""]) {
    const p = spawnSync(bin("tools/ferry/ferry"), ["--new-session-rate", value], { encoding: "utf8", timeout: 10000 });
    assert.equal(p.status, 2, `--new-session-rate ${value}`);
    assert.match(p.stderr, /^ferry: invalid new session (rate|burst) '.*': .* \(see ferry --help\)\n$/);
  }
  const env = spawnSync(bin("tools/ferry/ferry"), [], { encoding: "utf8", timeout: 10000, env: { ...process.env, FERRY_NEW_SESSION_RATE: "2/x" } });
  assert.equal(env.status, 2);
  assert.match(env.stderr, /FERRY_NEW_SESSION_RATE/);
});

test("history flags: bad values stop ferry with one line", async () => {
  for (const [flag, value] of [["--history", "10001"], ["--history", "x"], ["--history-bytes", "-1"]]) {
    const p = spawnSync(bin("tools/ferry/ferry"), [flag, value], { encoding: "utf8", timeout: 10000 });
    assert.equal(p.status, 2, `${flag} ${value}`);
    assert.match(p.stderr, /invalid history/);
  }
});
