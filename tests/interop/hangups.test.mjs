// Clients that hang up at every point of every transport's exchange must not kill the server
// (issue 9, defect 1: a write to a socket the peer has reset raised SIGPIPE, whose default
// action ends the process). The programs users run are tested as they run them: tools/ferry and
// examples/echo, started by Node's child_process (libuv resets every signal to SIG_DFL in the
// child, so nothing here masks SIGPIPE). Each scenario hangs up both ways, with a FIN
// (socket.end) and with a reset (SO_LINGER 0), repeatedly; afterwards the server must still be
// alive, serve a good client, and exit 0 on SIGTERM (no leak under LeakSanitizer).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import crypto from "node:crypto";
import { io } from "socket.io-client";
import { Socket as EioSocket } from "engine.io-client";
import { bin, startServer, once } from "../lib/server.mjs";

const ROUNDS = 6; // hang-ups per scenario and way (bounded; each round is a few round trips)
const WAIT = 10000; // generous bound on any single wait

// ------------------------------------------------------------------ a raw TCP client

class Raw {
  static open(port) {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, "127.0.0.1");
      s.once("error", reject);
      s.once("connect", () => {
        s.off("error", reject);
        resolve(new Raw(s));
      });
    });
  }
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.waiters = [];
    this.ended = false;
    sock.on("data", (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    sock.on("close", () => {
      this.ended = true;
      this.wake();
    });
    sock.on("error", () => {});
  }
  wake() {
    for (const w of this.waiters.splice(0)) w();
  }
  write(b) {
    if (!this.sock.destroyed) this.sock.write(b);
  }
  // Resolve once the received bytes contain needle (string or Buffer).
  async until(needle, ms = WAIT) {
    const deadline = Date.now() + ms;
    while (this.buf.indexOf(needle) < 0) {
      if (this.ended) throw new Error(`connection ended before ${JSON.stringify(String(needle))}: ${this.buf.toString("latin1").slice(0, 200)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${JSON.stringify(String(needle))}`);
      await new Promise((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
  // Hang up: "fin" half-closes and forgets the socket; "reset" sends an RST at once.
  hangUp(how) {
    if (how === "reset") this.sock.resetAndDestroy();
    else this.sock.destroy(); // FIN; anything the server writes next draws an RST
  }
}

function wsUpgrade(path, extra = "") {
  const key = crypto.randomBytes(16).toString("base64");
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`
  );
}

function wsFrame(text, { fin = true, op = 1 } = {}) {
  const payload = Buffer.from(text);
  const len = payload.length;
  let head;
  if (len < 126) head = Buffer.from([(fin ? 0x80 : 0) | op, 0x80 | len]);
  else if (len < 65536) {
    head = Buffer.from([(fin ? 0x80 : 0) | op, 0x80 | 126, 0, 0]);
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = (fin ? 0x80 : 0) | op;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  const key = crypto.randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([head, key, body]);
}

const get = (target, headers = "") => `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}\r\n`;
const post = (target, body, headers = "") =>
  `POST ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain;charset=UTF-8\r\n` +
  `Content-Length: ${Buffer.byteLength(body)}\r\n${headers}\r\n${body}`;

// A polling handshake on its own connection; returns the sid.
async function pollingSid(port, path, query = "") {
  const c = await Raw.open(port);
  c.write(get(`${path}?EIO=4&transport=polling${query}`));
  await c.until('"pingInterval"');
  const sid = /"sid":"([^"]+)"/.exec(c.buf.toString())[1];
  c.sock.destroy();
  return sid;
}

async function postOn(port, target, body) {
  const c = await Raw.open(port);
  c.write(post(target, body));
  await c.until("\r\n\r\n");
  c.sock.destroy();
}

function alive(srv) {
  assert.equal(srv.proc.exitCode, null, `server exited: ${srv.stderr()}`);
  assert.equal(srv.proc.signalCode, null, `server was killed by ${srv.proc.signalCode}: ${srv.stderr()}`);
}

const BIG = "x".repeat(600 * 1024); // bigger than a socket buffer: the server writes in parts

// ------------------------------------------------------------------ the scenarios

// Each scenario: run(srv, how) performs one hang-up; the server is checked after every round.
function scenarios({ path, sse, socketio }) {
  const list = [];
  list.push({
    name: "websocket: hang up right after sending the upgrade request",
    async run(srv, how) {
      const c = await Raw.open(srv.port);
      c.write(wsUpgrade(`${path}?EIO=4&transport=websocket`));
      c.hangUp(how);
    },
  });
  list.push({
    name: "websocket: hang up after the 101, before the open packet is read",
    async run(srv, how) {
      const c = await Raw.open(srv.port);
      c.write(wsUpgrade(`${path}?EIO=4&transport=websocket`));
      await c.until("\r\n\r\n");
      c.hangUp(how);
    },
  });
  list.push({
    name: "websocket: hang up in the middle of a client frame",
    async run(srv, how) {
      const c = await Raw.open(srv.port);
      c.write(wsUpgrade(`${path}?EIO=4&transport=websocket`));
      await c.until('"pingInterval"');
      const f = wsFrame("4" + "y".repeat(5000));
      c.write(f.subarray(0, 1000));
      await new Promise((r) => setImmediate(r));
      c.hangUp(how);
    },
  });
  list.push({
    name: "websocket: hang up while the server writes a large frame",
    async run(srv, how) {
      const c = await Raw.open(srv.port);
      c.write(wsUpgrade(`${path}?EIO=4&transport=websocket`));
      await c.until('"pingInterval"');
      if (socketio) {
        // A Socket.IO client that joins a room; a publish of BIG follows (broadcast scenario).
        c.write(wsFrame("40"));
        await c.until("40{");
        c.write(wsFrame('421["join",{"room":"r"}]'));
        await c.until("431[");
        // The bytes of a big echo: an unknown event answered by its ack, with the data.
        c.write(wsFrame(`422["${"z".repeat(20)}",${JSON.stringify(BIG.slice(0, 200000))}]`));
      } else {
        c.write(wsFrame("4" + BIG)); // echoed back: 600 KiB the server writes in parts
      }
      await c.until(Buffer.from([0x81]), WAIT).catch(() => {});
      c.hangUp(how);
    },
  });
  list.push({
    name: "polling: hang up right after sending the handshake request",
    async run(srv, how) {
      const c = await Raw.open(srv.port);
      c.write(get(`${path}?EIO=4&transport=polling`));
      c.hangUp(how);
    },
  });
  list.push({
    name: "polling: hang up with a held poll, then the server writes to it",
    async run(srv, how) {
      const sid = await pollingSid(srv.port, path);
      if (socketio) await postOn(srv.port, `${path}?EIO=4&transport=polling&sid=${sid}`, "40");
      const c = await Raw.open(srv.port);
      c.write(get(`${path}?EIO=4&transport=polling&sid=${sid}`));
      if (socketio) {
        await c.until("40{"); // the CONNECT answer; the next GET is held
        c.buf = Buffer.alloc(0);
        c.write(get(`${path}?EIO=4&transport=polling&sid=${sid}`));
      }
      await new Promise((r) => setTimeout(r, 20)); // the GET is parsed and held (no event to await)
      c.hangUp(how);
      // Something for the dead poll: an echo (or an ack) of a big message.
      const body = socketio ? `421["nope",${JSON.stringify(BIG.slice(0, 100000))}]` : "4" + BIG.slice(0, 100000);
      await postOn(srv.port, `${path}?EIO=4&transport=polling&sid=${sid}`, body).catch(() => {});
    },
  });
  list.push({
    name: "polling: hang up while the server writes a large poll response",
    async run(srv, how) {
      const sid = await pollingSid(srv.port, path);
      if (socketio) {
        await postOn(srv.port, `${path}?EIO=4&transport=polling&sid=${sid}`, "40");
        const c0 = await Raw.open(srv.port);
        c0.write(get(`${path}?EIO=4&transport=polling&sid=${sid}`));
        await c0.until("40{");
        c0.sock.destroy();
        await postOn(srv.port, `${path}?EIO=4&transport=polling&sid=${sid}`,
          `421["nope",${JSON.stringify(BIG)}]`);
      } else {
        await postOn(srv.port, `${path}?EIO=4&transport=polling&sid=${sid}`, "4" + BIG.slice(0, 900000));
      }
      const c = await Raw.open(srv.port);
      c.write(get(`${path}?EIO=4&transport=polling&sid=${sid}`));
      await c.until("\r\n\r\n");
      c.hangUp(how);
    },
  });
  if (sse) {
    list.push({
      name: "sse: hang up right after sending the stream request",
      async run(srv, how) {
        const c = await Raw.open(srv.port);
        c.write(get(`${path}?EIO=4&transport=sse`, "Accept: text/event-stream\r\n"));
        c.hangUp(how);
      },
    });
    list.push({
      name: "sse: hang up mid-stream, while the server writes events",
      async run(srv, how) {
        const c = await Raw.open(srv.port);
        c.write(get(`${path}?EIO=4&transport=sse`, "Accept: text/event-stream\r\n"));
        await c.until('"pingInterval"');
        const sid = /"sid":"([^"]+)"/.exec(c.buf.toString())[1];
        const up = `${path}?EIO=4&transport=sse&sid=${sid}`;
        await postOn(srv.port, up, "40");
        await c.until("40{");
        // An unknown event with a big argument is answered by an error ack on the stream.
        const p = postOn(srv.port, up, `421["nope",${JSON.stringify(BIG)}]`).catch(() => {});
        await c.until("43", WAIT).catch(() => {});
        c.hangUp(how);
        await p;
      },
    });
  }
  return list;
}

// A good client after the hang-ups: a full round trip with the official client.
async function goodSocketIo(url) {
  const s = io(url, { transports: ["polling", "websocket"], reconnection: false, forceNew: true });
  try {
    await once(s, "connect", WAIT);
    const ack = await s.timeout(WAIT).emitWithAck("join", { room: "good" });
    assert.equal(ack.ok, true);
  } finally {
    s.close();
  }
}

async function goodEngineIo(url) {
  const s = new EioSocket(url, { path: "/engine.io/", transports: ["polling", "websocket"] });
  try {
    await once(s, "open", WAIT);
    const got = once(s, "message", WAIT);
    s.send("still here");
    assert.equal(await got, "still here");
  } finally {
    s.close();
  }
}

// ------------------------------------------------------------------ the two programs

const programs = [
  {
    name: "tools/ferry",
    start: () =>
      startServer(bin("tools/ferry/ferry"), [
        "--port", "0", "--transports", "polling,websocket,sse", "--ping-interval", "200",
        "--ping-timeout", "20000", "--allow-publish", "*", "--publish-rate", "0",
      ], { env: { FERRY_PUBLISH_TOKEN: "t0ken" } }),
    opts: { path: "/socket.io/", sse: true, socketio: true },
    good: goodSocketIo,
  },
  {
    name: "examples/echo",
    start: () => startServer(bin("examples/echo/ferry-echo"), ["--suite", "--port", "0"]),
    opts: { path: "/engine.io/", sse: false, socketio: false },
    good: goodEngineIo,
  },
];

// One server per scenario: a scenario that kills it is named by its own failure.
async function withServer(prog, fn) {
  const srv = await prog.start();
  try {
    await fn(srv);
    // Give the server time to write to the dead sockets (pings every 200/300 ms), then a good
    // client must still be served.
    await new Promise((r) => setTimeout(r, 400));
    alive(srv);
    await prog.good(srv.url);
    alive(srv);
  } finally {
    const code = await srv.stop();
    assert.equal(code, 0, `server exit ${code} (signal ${srv.proc.signalCode}): ${srv.stderr()}`);
  }
}

for (const prog of programs) {
  for (const sc of scenarios(prog.opts)) {
    test(`${prog.name}: ${sc.name}`, { timeout: 120000 }, () =>
      withServer(prog, async (srv) => {
        for (const how of ["fin", "reset"]) {
          for (let i = 0; i < ROUNDS; i++) {
            await sc.run(srv, how);
            alive(srv);
          }
        }
      }));
  }
  if (!prog.opts.socketio) continue;
  test(`${prog.name}: broadcast: hang up while a large publish is being written to a room`, { timeout: 120000 }, () =>
    withServer(prog, async (srv) => {
      for (const how of ["fin", "reset"]) {
        for (let round = 0; round < 3; round++) {
          const victims = [];
          for (let i = 0; i < 6; i++) {
            const c = await Raw.open(srv.port);
            c.write(wsUpgrade(`/socket.io/?EIO=4&transport=websocket`));
            await c.until('"pingInterval"');
            c.write(wsFrame("40"));
            await c.until("40{");
            c.write(wsFrame('421["join",{"room":"crowd"}]'));
            await c.until("431[");
            victims.push(c);
          }
          const res = fetch(`${srv.url}/api/publish`, {
            method: "POST",
            headers: { authorization: "Bearer t0ken", "content-type": "application/json" },
            body: JSON.stringify({ room: "crowd", event: "big", data: BIG.slice(0, 500000) }),
          });
          // Hang up as the first bytes of the broadcast arrive.
          await victims[0].until("big", WAIT).catch(() => {});
          for (const v of victims) v.hangUp(how);
          assert.equal((await res).status, 200);
          alive(srv);
        }
      }
    }));
}
