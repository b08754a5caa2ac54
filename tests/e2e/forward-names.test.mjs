// Node addresses as host names (issue 18, docs/scaling.md "Host names"): a cluster node may
// publish `--node-address NAME:PORT`; a node that forwards to it resolves the name without
// blocking its loop (uv_getaddrinfo). A private redis-server and tools/ferry nodes on loopback,
// published as "localhost:PORT": a polling session opened on one node is used through the
// other (its POST and its GET forwarded), and the forwarder's /metrics counts them. A node
// published under a name that cannot resolve: its sessions' requests through another node are
// answered 400 "Session ID unknown", and the forwarder says why in one line. (The bad name has
// a 70-character label: glibc refuses it before asking any DNS server.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { haveRedis, ferryHasRedis, startRedis, startNode, sleep } from "./cluster.mjs";
import { freePort } from "../lib/nginx.mjs";

const skip = !haveRedis()
  ? "redis-server is not installed (scripts/deps.sh test installs it)"
  : !ferryHasRedis()
    ? "tools/ferry was built without Redis (-DFERRY_WITH_REDIS=OFF)"
    : false;

async function nodeAt(redis, id, address) {
  const port = await freePort();
  const srv = await startNode(redis.url, id, ["--port", String(port), "--node-address", address(port), "--metrics-listen", "127.0.0.1:0"]);
  const m = /metrics at (http:\/\/\S+)/.exec(srv.stdout());
  assert.ok(m, srv.stdout());
  srv.metrics = m[1];
  return srv;
}

// The nodes' addresses in Redis, once there are n of them (each node writes its own soon after
// it starts).
async function published(redis, n) {
  const deadline = Date.now() + 20000;
  for (;;) {
    const r = spawnSync("redis-cli", ["-p", String(redis.port), "--scan", "--pattern", "*:node:*"], { encoding: "utf8", timeout: 10000 });
    const keys = (r.stdout ?? "").split("\n").filter(Boolean);
    if (keys.length >= n) {
      return keys.map((k) => spawnSync("redis-cli", ["-p", String(redis.port), "GET", k], { encoding: "utf8" }).stdout.trim());
    }
    if (Date.now() > deadline) throw new Error(`${keys.length} of ${n} node addresses in Redis`);
    await sleep(50);
  }
}

const EIO = "/socket.io/?EIO=4&transport=polling";

async function handshake(srv) {
  const r = await fetch(`${srv.url}${EIO}`);
  assert.equal(r.status, 200);
  const body = await r.text();
  assert.equal(body[0], "0", body);
  const sid = JSON.parse(body.slice(1)).sid;
  assert.equal(sid.length, 36, "a cluster node's signed sid");
  return sid;
}

function metric(text, name) {
  const m = new RegExp(`^${name} (\\d+)$`, "m").exec(text);
  assert.ok(m, `${name} on /metrics`);
  return Number(m[1]);
}

test("forwarding to nodes published as localhost:PORT, and a name that does not resolve", { skip, timeout: 120000 }, async () => {
  const redis = await startRedis();
  const nodes = [];
  try {
    const a = await nodeAt(redis, "na", (p) => `localhost:${p}`);
    nodes.push(a);
    const b = await nodeAt(redis, "nb", (p) => `localhost:${p}`);
    nodes.push(b);
    const badName = `${"x".repeat(70)}.invalid`;
    const c = await nodeAt(redis, "nc", (p) => `${badName}:${p}`);
    nodes.push(c);
    const addrs = await published(redis, 3);
    assert.ok(addrs.includes(`localhost:${a.port}`), JSON.stringify(addrs));
    assert.ok(addrs.includes(`${badName}:${c.port}`), "the name is published as given");

    // A session of a's, used through b: b resolves "localhost" and forwards.
    const sid = await handshake(a);
    const post = await fetch(`${b.url}${EIO}&sid=${sid}`, { method: "POST", body: '40{"name":"through-b"}', headers: { "content-type": "text/plain;charset=UTF-8" } });
    assert.equal(post.status, 200, await post.clone().text());
    assert.equal(await post.text(), "ok");
    const poll = await fetch(`${b.url}${EIO}&sid=${sid}`);
    assert.equal(poll.status, 200);
    assert.match(await poll.text(), /^40\{"sid":"[^"]+"/, "the CONNECT answer from a, through b");
    const text = await (await fetch(b.metrics)).text();
    assert.ok(metric(text, "ferry_forward_requests_total") >= 2, "b's /metrics counts the forwarded POST and GET");
    assert.equal(metric(text, 'ferry_forward_refused_total\\{reason="unknown"\\}'), 0);

    // A session of c's (published under a name that cannot resolve), through b: 400 and a line.
    const csid = await handshake(c);
    const bad = await fetch(`${b.url}${EIO}&sid=${csid}`);
    assert.equal(bad.status, 400);
    assert.deepEqual(await bad.json(), { code: 1, message: "Session ID unknown" });
    const deadline = Date.now() + 10000;
    while (!/cannot resolve the address '[x]{70}\.invalid:\d+' of node [0-9a-f]{12}: .*answered 400/.test(b.stderr()) && Date.now() < deadline) await sleep(50);
    assert.match(b.stderr(), /cannot resolve the address '[x]{70}\.invalid:\d+' of node [0-9a-f]{12}: .*answered 400/);
    const after = await (await fetch(b.metrics)).text();
    assert.ok(metric(after, 'ferry_forward_refused_total\\{reason="unknown"\\}') >= 1, "counted as refused: unknown");
  } finally {
    for (const n of nodes) assert.equal(await n.stop(), 0, n.stderr());
    await redis.stop();
  }
});

test("--node-address takes a host name; a malformed one is refused with one line", { skip: ferryHasRedis() ? false : "built without Redis" }, async () => {
  const { bin } = await import("../lib/server.mjs");
  const run = (addr) => spawnSync(bin("tools/ferry/ferry"), ["--port", "0", "--redis", "redis://127.0.0.1:1", "--node-address", addr], { encoding: "utf8", timeout: 10000 });
  for (const addr of ["web1.internal", "-bad.name:8080", "web_1 x:8080", "web1:0"]) {
    const r = run(addr);
    assert.notEqual(r.status, 0, addr);
    assert.match(r.stderr, /node address|--node-address/, `${addr}: ${r.stderr}`);
  }
});
