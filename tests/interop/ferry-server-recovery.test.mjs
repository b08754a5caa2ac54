// tools/ferry enables connection-state recovery by default (--recovery-ms, FERRY_RECOVERY_MS;
// issue 14): a client of the relay whose connection drops comes back with its id and rooms and
// gets what was published to its rooms meanwhile, with no code of its own. 0 turns it off.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { io } from "socket.io-client";
import { startServer, bin, once } from "../lib/server.mjs";

const TOKEN = "recovery-token";
const servers = [];
after(async () => {
  for (const s of servers) assert.equal(await s.stop(), 0, "ferry exits 0 on SIGTERM (no leak)");
});

async function ferry(args = [], env = {}) {
  const s = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--publish-token", TOKEN, ...args], { env });
  servers.push(s);
  return s;
}

function publish(srv, room, event, data) {
  return fetch(`${srv.url}/api/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ room, event, data }),
  }).then((r) => r.json());
}

// Join, receive one publish, drop the connection (not a disconnect on purpose), publish twice
// while away, come back: what did the client see?
async function dropAndReturn(srv, transports) {
  // No automatic reconnection: the test comes back itself once the server has let go.
  const a = io(srv.url, { forceNew: true, transports, auth: { name: "ann" }, reconnection: false });
  try {
    await once(a, "connect");
    assert.ok(!a.recovered, "a first connection is not a recovery (undefined without a pid)");
    assert.equal((await a.timeout(5000).emitWithAck("join", { room: "r1" })).ok, true);
    const got = [];
    a.on("news", (...args) => got.push(args));
    const first = once(a, "news");
    assert.equal((await publish(srv, "r1", "news", "before")).recipients, 1);
    await first;
    const id = a.id;
    const gone = once(a, "disconnect");
    a.io.engine.close(); // the connection is lost: the server sees "transport close"
    await gone;
    // Wait until the server has let the socket go (nobody in r1 any more), then publish.
    for (let i = 0; i < 100; i++) {
      if ((await publish(srv, "r1", "probe", i)).recipients === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await publish(srv, "r1", "news", "missed-1");
    await publish(srv, "r1", "news", "missed-2");
    const back = once(a, "connect", 10000);
    a.connect(); // with its pid and last offset, as socket.io-client's reconnection does
    await back;
    // A socket that was not recovered is a new one, in no room: it joins again as an app would.
    if (!a.recovered) assert.equal((await a.timeout(5000).emitWithAck("join", { room: "r1" })).ok, true);
    // Something after the replay, to know the replay has arrived.
    const tail = new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no "after"; got ${JSON.stringify(got)}`)), 10000);
      a.on("news", (x) => x === "after" && (clearTimeout(t), resolve()));
    });
    await publish(srv, "r1", "news", "after");
    await tail;
    return { recovered: !!a.recovered, sameId: a.id === id, got };
  } finally {
    a.disconnect();
  }
}

for (const transports of [["websocket"], ["polling"]]) {
  test(`default: ${transports[0]} client recovers its id, room and missed publishes`, async () => {
    const srv = await ferry();
    assert.match(srv.stdout(), /connection-state recovery: 120000 ms/);
    const r = await dropAndReturn(srv, transports);
    assert.equal(r.recovered, true, "socket.recovered");
    assert.equal(r.sameId, true, "same socket id");
    assert.deepEqual(r.got.map((g) => g[0]), ["before", "missed-1", "missed-2", "after"]);
    for (const g of r.got) assert.match(g[g.length - 1], /^\d+$/, "each event ends with its offset");
  });
}

test("--recovery-ms 0 and FERRY_RECOVERY_MS=0 turn it off: a new socket, the missed publishes lost", async () => {
  for (const [args, env] of [[["--recovery-ms", "0"], {}], [[], { FERRY_RECOVERY_MS: "0" }]]) {
    const srv = await ferry(args, env);
    assert.match(srv.stdout(), /connection-state recovery: off/);
    const r = await dropAndReturn(srv, ["websocket"]);
    assert.equal(r.recovered, false);
    assert.equal(r.sameId, false);
    assert.deepEqual(r.got, [["before", { room: "r1" }], ["after", { room: "r1" }]], "no offset argument");
  }
});

test("a short window: a client back after it is not recovered", async () => {
  const srv = await ferry(["--recovery-ms=300"]);
  assert.match(srv.stdout(), /connection-state recovery: 300 ms/);
  const a = io(srv.url, { forceNew: true, transports: ["websocket"], auth: { name: "ann" }, reconnection: false });
  await once(a, "connect");
  const id = a.id;
  a.io.engine.close();
  await new Promise((r) => setTimeout(r, 800));
  a.connect();
  await once(a, "connect");
  assert.equal(a.recovered, false);
  assert.notEqual(a.id, id);
  a.disconnect();
});

// The log's count bound (--recovery-packets, FERRY_RECOVERY_PACKETS): a window lasts only as long
// as the log. 2 packets: "before"'s offset is gone once the probes and the two missed publishes
// are logged after it, so the client is a new socket ("gap"); 1000 (the variable) holds them.
test("--recovery-packets bounds the log: a client that missed more than it holds is a new socket", async () => {
  const small = await ferry(["--recovery-packets", "2"]);
  let r = await dropAndReturn(small, ["websocket"]);
  assert.equal(r.recovered, false, "2 packets: not recovered");
  assert.equal(r.sameId, false);
  assert.deepEqual(r.got.map((g) => g[0]), ["before", "after"], "what it missed is not replayed");
  const big = await ferry([], { FERRY_RECOVERY_PACKETS: "1000" });
  r = await dropAndReturn(big, ["websocket"]);
  assert.equal(r.recovered, true, "1000 packets: recovered");
  assert.deepEqual(r.got.map((g) => g[0]), ["before", "missed-1", "missed-2", "after"]);
});

test("bad values stop ferry with one clear line; --help documents the flag", () => {
  for (const [args, why] of [[["--recovery-packets", "many"], /invalid recovery log packets 'many': not a number/],
    [["--recovery-packets", "10000001"], /invalid recovery log packets '10000001': must be between 0 and 10000000/],
    [["--recovery-bytes", "-1"], /invalid recovery log bytes '-1': not a number/]]) {
    const r = spawnSync(bin("tools/ferry/ferry"), ["--port", "0", ...args], { encoding: "utf8", timeout: 10000 });
    assert.equal(r.status, 2, `exit 2 for ${JSON.stringify(args)}`);
    assert.match(r.stderr, why);
  }
  for (const [args, env] of [[["--recovery-ms", "-1"], {}], [["--recovery-ms", "1e3"], {}], [["--recovery-ms", "86400001"], {}], [[], { FERRY_RECOVERY_MS: "soon" }]]) {
    const r = spawnSync(bin("tools/ferry/ferry"), ["--port", "0", ...args], { env: { ...process.env, ...env }, encoding: "utf8", timeout: 10000 });
    assert.equal(r.status, 2, `exit 2 for ${JSON.stringify(args)} ${JSON.stringify(env)}`);
    assert.match(r.stderr, /invalid recovery window/);
  }
  const h = spawnSync(bin("tools/ferry/ferry"), ["--help"], { encoding: "utf8", timeout: 10000 });
  assert.equal(h.status, 0);
  assert.match(h.stdout, /--recovery-ms MS/);
  assert.match(h.stdout, /FERRY_RECOVERY_MS/);
  assert.match(h.stdout, /--recovery-packets N .*\(FERRY_RECOVERY_PACKETS,\s+default 10000\)/s);
  assert.match(h.stdout, /--recovery-bytes BYTES .*\(FERRY_RECOVERY_BYTES,\s+default 16777216\)/s);
});
