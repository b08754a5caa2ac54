// Rooms and broadcasts with three socket.io-client clients on mixed transports (polling,
// websocket, polling+upgrade): the right clients receive, each exactly once. "Exactly" is
// checked without sleeping: after each broadcast every client makes an ack round trip, whose
// reply the server queues after the broadcast, so anything still missing or extra shows.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startSio, offersWebSocket, MODES } from "../lib/sio.mjs";

let srv;
let clients = [];
before(async () => {
  srv = await startSio();
  const ws = await offersWebSocket(srv.url);
  const modes = ws ? ["polling", "websocket", "upgrade"] : ["polling", "polling", "polling"];
  clients = modes.map((m) => {
    const socket = io(srv.url, { ...MODES[m], forceNew: true, reconnection: false });
    const c = { socket, got: [] };
    socket.onAny((event, ...args) => {
      if (event !== "auth") c.got.push([event, ...args]);
    });
    return c;
  });
  await Promise.all(clients.map((c) => new Promise((r) => c.socket.once("auth", r))));
});
after(async () => {
  for (const c of clients) c.socket.disconnect();
  assert.equal(await srv.stop(), 0, "the test server exits cleanly");
});

// What each client received since the last call, after a round trip through the server.
async function drain() {
  await Promise.all(clients.map((c) => c.socket.timeout(3000).emitWithAck("message-with-ack", "sync")));
  return clients.map((c) => c.got.splice(0));
}

async function ask(c, ...args) {
  return c.socket.timeout(3000).emitWithAck(...args);
}

test("each socket is in its own room first; join and leave report the rooms", async () => {
  const [a] = clients;
  const rooms = await ask(a, "join", "red");
  assert.deepEqual(rooms, [a.socket.id, "red"]);
  assert.deepEqual(await ask(a, "join", "red"), [a.socket.id, "red"], "joining twice is a no-op");
  assert.deepEqual(await ask(a, "leave", "red"), [a.socket.id]);
  assert.deepEqual(await ask(a, "leave", "red"), [a.socket.id], "leaving a room not joined is a no-op");
});

test("to(room): members only, each once", async () => {
  const [a, b, c] = clients;
  await ask(a, "join", "red");
  await ask(b, "join", "red");
  await ask(c, "join", "blue");
  assert.equal(await ask(a, "to", "red", "hello", 1, { x: "y" }), 2);
  const [ga, gb, gc] = await drain();
  assert.deepEqual(ga, [["hello", 1, { x: "y" }]]);
  assert.deepEqual(gb, [["hello", 1, { x: "y" }]]);
  assert.deepEqual(gc, []);
});

test("to(several rooms): a socket in two of them gets the packet once", async () => {
  const [a, b, c] = clients;
  await ask(a, "join", "blue"); // a: red+blue, b: red, c: blue
  assert.equal(await ask(b, "to-many", ["red", "blue"], "multi", "m"), 3);
  const got = await drain();
  for (const g of got) assert.deepEqual(g, [["multi", "m"]]);
  await ask(a, "leave", "blue");
});

test("except(room) and socket.broadcast (everyone but the sender)", async () => {
  const [a, b, c] = clients;
  assert.equal(await ask(c, "except", "red", "not-red"), 1);
  let [ga, gb, gc] = await drain();
  assert.deepEqual([ga, gb, gc], [[], [], [["not-red"]]]);
  assert.equal(await ask(a, "broadcast", "from-a", Buffer.from([1, 2])), 2);
  [ga, gb, gc] = await drain();
  assert.deepEqual(ga, []);
  for (const g of [gb, gc]) {
    assert.equal(g.length, 1);
    assert.equal(g[0][0], "from-a");
    assert.deepEqual([...g[0][1]], [1, 2], "binary broadcast: one encoding, shared by every recipient");
  }
});

test("a socket's id is a room; leaving a room stops delivery", async () => {
  const [a, b, c] = clients;
  assert.equal(await ask(a, "to", c.socket.id, "direct", 7), 1);
  let got = await drain();
  assert.deepEqual(got, [[], [], [["direct", 7]]]);
  await ask(b, "leave", "red");
  assert.equal(await ask(c, "to", "red", "red-again"), 1);
  got = await drain();
  assert.deepEqual(got, [[["red-again"]], [], []]);
});

test("a disconnected socket leaves its rooms", async () => {
  const [a, b, c] = clients;
  await ask(b, "join", "green");
  await ask(c, "join", "green");
  c.socket.disconnect();
  await srv.disconnectOf(c.socket.id ?? "", 5000).catch(() => {});
  assert.equal(await ask(a, "to", "green", "g"), 1);
  const [ga, gb] = await Promise.all(
    [a, b].map(async (x) => {
      await x.socket.timeout(3000).emitWithAck("message-with-ack", "sync");
      return x.got.splice(0);
    }),
  );
  assert.deepEqual(ga, []);
  assert.deepEqual(gb, [["g"]]);
});
