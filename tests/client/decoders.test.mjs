// Property tests (fast-check) of client-js's decoders, as the browser runs them: the Socket.IO
// packet decoder, the Engine.IO text forms, and the SSE event-stream reader inside the engine,
// fed through a fake fetch whose stream is cut at arbitrary byte positions (inside UTF-8
// sequences, CRLF pairs and field names too). What a user would check: every message sent
// arrives once, in order, unchanged; hostile input gives a parse error or a closed engine,
// never an exception escaping into the page.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decode } from "../../client-js/src/socket.mjs";
import { Engine, decodeText, encodeText } from "../../client-js/src/engine.mjs";

test("Socket.IO decode: any string gives a well-formed packet or a thrown Error", () => {
  const pieces = fc.constantFrom("0", "1", "2", "3", "4", "5", "6", "7", "1-", "/", "/a,", ",", "12", "[", "]", "{", "}", '"', '{"_placeholder":true,"num":0}', "null", '"x"', "-", "\u2028");
  const arb = fc.oneof(fc.string({ maxLength: 40 }), fc.array(pieces, { maxLength: 12 }).map((a) => a.join("")));
  fc.assert(
    fc.property(arb, (s) => {
      let p;
      try {
        p = decode(s);
      } catch (e) {
        assert.ok(e instanceof Error, `a thrown ${typeof e} for ${JSON.stringify(s)}`);
        return;
      }
      assert.ok(Number.isInteger(p.type) && p.type >= 0 && p.type <= 6);
      assert.equal(typeof p.nsp, "string");
      assert.ok(p.nsp.startsWith("/"));
      if (p.type === 2 || p.type === 5) assert.ok(Array.isArray(p.data) && p.data.length > 0);
      if (p.type === 3 || p.type === 6) assert.ok(Array.isArray(p.data));
    }),
    { numRuns: 3000 },
  );
});

test("Engine.IO text forms: encodeText then decodeText gives the packet back (text and binary)", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 6 }), fc.oneof(fc.string({ unit: "binary", maxLength: 30 }), fc.uint8Array({ maxLength: 40 })), (type, data) => {
      const bin = data instanceof Uint8Array;
      const p = decodeText(encodeText({ type: bin ? 4 : type, data: bin ? data.buffer : data }));
      assert.equal(p.type, bin ? 4 : type);
      if (bin) assert.deepEqual(new Uint8Array(p.data), data);
      else assert.equal(p.data, data);
    }),
    { numRuns: 2000 },
  );
});

// ---- the SSE reader through the engine

const HS = '0{"sid":"s1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}';
const b64 = (u8) => Buffer.from(u8).toString("base64");
// The event form of a message (docs/protocol.md 3.2): "4" + text, "x" + base64 of it when it
// holds CR, LF or NUL, "b" + base64 for binary.
function form(m) {
  if (m instanceof Uint8Array) return "b" + b64(m);
  const t = "4" + m;
  return /[\r\n\0]/.test(t) ? "x" + Buffer.from(t, "utf8").toString("base64") : t;
}

// A fake fetch: the first SSE GET streams `bytes` in the given pieces, then stays open until
// aborted; later GETs stay open; POSTs are answered "ok".
function fakeFetch(pieces) {
  let first = true;
  return async (url, init = {}) => {
    if ((init.method || "GET") === "POST") return { status: 200, text: async () => "ok", headers: { get: () => null } };
    const mine = first ? pieces.slice() : [];
    first = false;
    let wake = null;
    init.signal?.addEventListener("abort", () => wake?.());
    return {
      status: 200,
      headers: { get: () => "text/event-stream" },
      body: {
        getReader: () => ({
          read: () =>
            mine.length
              ? Promise.resolve({ value: mine.shift(), done: false })
              : new Promise((_, reject) => (wake = () => reject(Object.assign(new Error("aborted"), { name: "AbortError" })))),
        }),
      },
    };
  };
}

function cut(bytes, points) {
  const at = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const out = [];
  let prev = 0;
  for (const p of [...at, bytes.length]) {
    if (p > prev) out.push(bytes.subarray(prev, p));
    prev = p;
  }
  return out;
}

async function receive(text, points, want) {
  const bytes = new TextEncoder().encode(text);
  const got = [];
  const errors = [];
  const e = new Engine("http://x.test/", { transports: ["sse"], fetch: fakeFetch(cut(bytes, points)), storage: null, upgrade: false });
  e.on("message", (d) => got.push(d));
  e.on("error", (err) => errors.push(err));
  for (let i = 0; i < 200 && got.length < want; i++) await new Promise((r) => setImmediate(r));
  e.close();
  return { got, errors };
}

const message = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 12 }),
  fc.string({ unit: fc.constantFrom("a", "\r", "\n", "\0", ":", " ", "é", "😀", "\u2028", "\ufeff"), maxLength: 12 }),
  fc.uint8Array({ maxLength: 12 }),
);

test("SSE reader: messages come out once, in order, unchanged, however the stream is cut", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(message, { maxLength: 8 }),
      fc.array(fc.nat(4000), { maxLength: 12 }),
      fc.boolean(),
      fc.boolean(),
      async (msgs, points, crlf, comments) => {
        const nl = crlf ? "\r\n" : "\n";
        let s = ":" + " ".repeat(3) + nl + "retry: 1000" + nl + nl + "id: s1:1" + nl + "data: " + HS + nl + nl;
        msgs.forEach((m, i) => {
          if (comments) s += ":" + nl; // keep-alive comments between events
          s += `id: s1:${i + 2}` + nl + "data: " + form(m) + nl + nl;
        });
        const { got } = await receive(s, points, msgs.length);
        assert.equal(got.length, msgs.length, "every message arrives");
        got.forEach((d, i) => {
          if (msgs[i] instanceof Uint8Array) assert.deepEqual(new Uint8Array(d), msgs[i]);
          else assert.equal(d, msgs[i]);
        });
      },
    ),
    {
      numRuns: 300,
      // Found by this test: the x form was decoded with the stream's own TextDecoder, so a
      // chunk cut inside a later multibyte character corrupted both (fixed in engine.mjs).
      examples: [[["a\u0000😀", "\u0800", Uint8Array.from([0, 0, 0, 0]), "\u0800𐀀𐀀"], [3221], false, false]],
    },
  );
});

test("SSE reader: a hostile stream after the handshake never throws into the page", async () => {
  const unhandled = [];
  const onRej = (r) => unhandled.push(r);
  process.on("unhandledRejection", onRej);
  try {
    const junk = fc.array(fc.constantFrom("data: ", "data:", "id: ", "\n", "\r\n", "\r", ":", "b", "x", "0", "4", "2", "3", "1", "6", "9", "{", "!!", "==", "x@@", "bA=", "é"), { maxLength: 30 }).map((a) => a.join(""));
    await fc.assert(
      fc.asyncProperty(junk, fc.array(fc.nat(400), { maxLength: 6 }), async (j, points) => {
        await receive("id: s1:1\ndata: " + HS + "\n\n" + j, points, Infinity);
      }),
      { numRuns: 200 },
    );
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(unhandled, [], "no rejection escaped the engine");
  } finally {
    process.off("unhandledRejection", onRej);
  }
});

// Found by this file: a polling body the engine cannot decode (a handshake that is not JSON,
// bad base64 after "b") threw out of Polling.poll(): an unhandled rejection in the page, and the
// poll loop stopped, so the engine sat "open" and deaf until its heartbeat gave up. Now such a
// body ends the session with "parse error" (as Engine.IO clients do), on every transport.
test("polling: a hostile body after the handshake never throws into the page", async () => {
  const unhandled = [];
  const onRej = (r) => unhandled.push(String(r));
  process.on("unhandledRejection", onRej);
  try {
    for (const bad of ["0garbage", "b!!!", "4ok\x1e0{"]) {
      let n = 0;
      const fetch = async (url, init = {}) => {
        if ((init.method || "GET") === "POST") return { status: 200, text: async () => "ok", headers: { get: () => null } };
        n++;
        if (n > 2) return new Promise((_, j) => init.signal?.addEventListener("abort", () => j(Object.assign(new Error("aborted"), { name: "AbortError" }))));
        return { status: 200, text: async () => (n === 1 ? HS : bad), headers: { get: () => null } };
      };
      const e = new Engine("http://x.test/", { transports: ["polling"], fetch, storage: null, upgrade: false });
      for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
      const polling = n > 2;
      const state = e.readyState;
      e.close();
      assert.ok(polling || state === "closed", `after ${JSON.stringify(bad)} the engine polls again or closes`);
    }
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(unhandled, [], "no rejection escaped the engine");
  } finally {
    process.off("unhandledRejection", onRej);
  }
});
