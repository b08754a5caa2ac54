// The conformance cases: every behaviour of shared/WEBSOCKET-CONFORMANCE.md (groups 1-13, same
// numbering) plus what issue 3 asks beyond it (group X: masking, length and size limits; group H:
// handshake checks; group D: permessage-deflate specifics). A case is an async function of a
// context; it throws Fail when the server's behaviour differs from every allowed outcome and
// returns "non-strict" when it matched only the NON-STRICT alternative.
//
// ctx: { deflate: bool (this run negotiates permessage-deflate), full: bool (untrimmed sizes),
//        open(opts) -> WsConn, port, host, path, t(ms) scaled timeout }
import { OP, closePayload, rawRequest, sleep, isUtf8 } from "./wsconn.mjs";
import { UTF8_GROUPS, KOSME } from "./utf8-sequences.mjs";

export class Fail extends Error {}
const fail = (msg) => {
  throw new Fail(msg);
};
const NON_STRICT = "non-strict";

const b = (s) => Buffer.from(s);
const rep = (byte, n) => Buffer.alloc(n, byte);
const textOf = (n) => {
  const unit = b("BAsd7&jh23");
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i += unit.length) unit.copy(out, i, 0, Math.min(unit.length, n - i));
  return out;
};
const show = (buf, max = 40) => {
  const hex = buf.subarray(0, max).toString("hex");
  return `${buf.length}B ${hex}${buf.length > max ? "…" : ""}`;
};

export function describe(ev) {
  switch (ev.type) {
    case "message": return `${ev.binary ? "binary" : "text"} message ${show(ev.data)}`;
    case "pong": return `pong ${show(ev.data)}`;
    case "ping": return `ping ${show(ev.data)}`;
    case "close": return `close frame code ${ev.code} reason ${JSON.stringify(ev.reason.toString())}`;
    case "end": return "TCP closed by the server";
    case "timeout": return `nothing within ${ev.ms} ms`;
    case "violation": return `server protocol violation: ${ev.why}`;
    default: return JSON.stringify(ev);
  }
}

// ------------------------------------------------------------------ expectations

async function expectMessage(c, data, binary, ms) {
  const ev = await c.next(ms);
  if (ev.type !== "message") fail(`expected the echo (${binary ? "binary" : "text"} ${show(data)}), got ${describe(ev)}`);
  if (ev.binary !== binary) fail(`echo came back as ${ev.binary ? "binary" : "text"}, sent as ${binary ? "binary" : "text"}`);
  if (!ev.data.equals(data)) fail(`echo differs: sent ${show(data)}, got ${show(ev.data)}`);
}

async function expectPong(c, data, ms) {
  const ev = await c.next(ms);
  if (ev.type !== "pong") fail(`expected pong ${show(data)}, got ${describe(ev)}`);
  if (!ev.data.equals(data)) fail(`pong payload differs: pinged ${show(data)}, got ${show(ev.data)}`);
}

// The server closes TCP after the close handshake (RFC 6455 7.1.1), so the client never has to.
async function expectEnd(c, ms = 3000) {
  const ev = await c.next(ms);
  if (ev.type === "end") return;
  if (ev.type === "timeout") fail(`server did not close TCP within ${ms} ms after the close handshake (FAILED BY CLIENT)`);
  fail(`after the close frame expected TCP close, got ${describe(ev)}`);
}

// Client-initiated close: the server must answer with a close frame (code in `allowed`, or
// none when the client sent none) and then close TCP. Nothing else may arrive first.
async function closeNormal(c, { code = 1000, payload, allowed } = {}) {
  allowed = allowed ?? [1000, code];
  await c.sendFrame({ op: OP.CLOSE, payload: payload ?? closePayload(code) });
  const ev = await c.next();
  if (ev.type !== "close") fail(`expected the server's close reply, got ${describe(ev)}`);
  if (ev.code !== null && !allowed.includes(ev.code)) fail(`server replied close code ${ev.code}, expected ${allowed.join(" or ")} (WRONG CODE)`);
  await expectEnd(c);
}

// The server must fail the connection: a close frame with one of `codes` (or no code) and TCP
// closed, or TCP dropped. A message, a pong or silence means it did not notice.
async function expectFail(c, codes, ms) {
  const ev = await c.next(ms);
  if (ev.type === "end") return "drop";
  if (ev.type === "close") {
    if (ev.code !== null && !codes.includes(ev.code)) fail(`server closed with code ${ev.code}, expected ${codes.join(" or ")} (WRONG CODE)`);
    if (!c.closeSent) await c.sendFrame({ op: OP.CLOSE, payload: closePayload(ev.code ?? 1000) });
    await expectEnd(c);
    return "close";
  }
  fail(`expected the server to fail the connection (${codes.join("/")}), got ${describe(ev)}`);
}

// Nothing may arrive within ms (a "timeout" step of a case).
async function expectQuiet(c, ms, what) {
  const ev = await c.next(ms);
  if (ev.type !== "timeout") fail(`${what}: expected nothing yet, got ${describe(ev)}`);
}

// Optional valid echo first (NON-STRICT when the server failed before echoing), then failure.
async function expectEchoThenFail(c, data, binary, codes) {
  const ev = await c.next();
  if (ev.type === "message") {
    if (ev.binary !== binary || !ev.data.equals(data)) fail(`echo before the bad frame differs: got ${describe(ev)}`);
    await expectFail(c, codes);
    return undefined;
  }
  if (ev.type === "end" || ev.type === "close") {
    c.events.unshift(ev);
    await expectFail(c, codes);
    return NON_STRICT;
  }
  fail(`expected the echo of the valid message and then failure, got ${describe(ev)}`);
}

// ------------------------------------------------------------------ case building blocks

const echoCase = (payload, binary, sendOpts = {}) => async (ctx) => {
  const c = await ctx.open();
  await c.sendMessage(payload, { binary, ...sendOpts });
  await expectMessage(c, payload, binary, ctx.t(sendOpts.ms ?? 5000));
  await closeNormal(c);
};

const P = (x) => (typeof x === "string" ? b(x) : x);

// Frames of one message split into `parts`, compressed part by part when deflate is on.
const parts = (c, list, binary = false) => c.messageFrames(Buffer.concat(list.map(P)), { binary, parts: list.map(P) });

const ping = (c, payload = "") => c.frame({ op: OP.PING, payload: P(payload) });

// Write frames one by one: "whole" as one write, "frame" per frame, "octet" byte by byte.
async function writeFrames(c, frames, chop = "frame") {
  if (chop === "whole") return c.write(Buffer.concat(frames));
  if (chop === "octet") return c.writeChopped(Buffer.concat(frames), 1);
  for (const f of frames) await c.write(f);
}

// ------------------------------------------------------------------ the groups

export function buildCases({ deflate, full }) {
  const cases = [];
  const add = (id, title, run, opts = {}) => cases.push({ id, title, run, ...opts });
  const FAIL_1002 = [1002];

  // 1: echo at the length-encoding boundaries.
  for (const [g, binary] of [[1, false], [2, true]]) {
    [0, 125, 126, 127, 128, 65535, 65536].forEach((n, i) =>
      add(`1.${g}.${i + 1}`, `${binary ? "binary" : "text"} message of ${n} bytes`, echoCase(binary ? rep(0xfe, n) : rep(0x2a, n), binary)));
    add(`1.${g}.8`, `${binary ? "binary" : "text"} 65536 bytes written in 997-byte chops`, echoCase(binary ? rep(0xfe, 65536) : rep(0x2a, 65536), binary, { chop: 997 }));
  }

  // 2: ping/pong.
  const pingCase = (payload, chop) => async (ctx) => {
    const c = await ctx.open();
    const f = ping(c, payload);
    if (chop) await c.writeChopped(f, 1);
    else await c.write(f);
    await expectPong(c, P(payload));
    await closeNormal(c);
  };
  add("2.1", "ping without payload", pingCase(""));
  add("2.2", "ping with text payload", pingCase("Hello, world!"));
  add("2.3", "ping with binary payload", pingCase(Buffer.from([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff])));
  add("2.4", "ping with 125-byte payload", pingCase(rep(0xfe, 125)));
  add("2.5", "ping with 126-byte payload -> 1002", async (ctx) => {
    const c = await ctx.open();
    await c.write(ping(c, rep(0xfe, 126)));
    await expectFail(c, FAIL_1002);
  });
  add("2.6", "ping with 125-byte payload in 1-byte chops", pingCase(rep(0xfe, 125), true));
  const unsolicited = (payload, thenPing) => async (ctx) => {
    const c = await ctx.open();
    await c.write(c.frame({ op: OP.PONG, payload: P(payload) }));
    if (thenPing) {
      await c.write(ping(c, thenPing));
      await expectPong(c, P(thenPing));
    }
    await closeNormal(c);
  };
  add("2.7", "unsolicited empty pong: no answer", unsolicited(""));
  add("2.8", "unsolicited pong with payload: no answer", unsolicited("unsolicited pong payload"));
  add("2.9", "unsolicited pong, then ping", unsolicited("unsolicited pong payload", "ping payload"));
  const tenPings = (chop) => async (ctx) => {
    const c = await ctx.open();
    const frames = [];
    for (let i = 0; i < 10; i++) frames.push(ping(c, `payload-${i}`));
    await writeFrames(c, frames, chop ? "octet" : "frame");
    for (let i = 0; i < 10; i++) await expectPong(c, b(`payload-${i}`));
    await closeNormal(c);
  };
  add("2.10", "10 pings back to back", tenPings(false));
  add("2.11", "10 pings back to back, octet chops", tenPings(true));

  // 3: reserved bits. rsv is the 3-bit field: 4 = RSV1, 2 = RSV2, 1 = RSV3.
  const rsvCase = ({ rsv, op = OP.TEXT, payload = "Hello, world!", before, chop }) => async (ctx) => {
    const c = await ctx.open();
    const frames = [];
    if (before) frames.push(...(await c.messageFrames(b("Hello, world!"))));
    frames.push(c.frame({ op, rsv, payload: P(payload) }));
    if (before) frames.push(ping(c, ""));
    await writeFrames(c, frames, chop ?? "frame");
    if (before) return expectEchoThenFail(c, b("Hello, world!"), false, FAIL_1002);
    await expectFail(c, FAIL_1002);
  };
  add("3.1", "text frame with RSV3 -> 1002", rsvCase({ rsv: 1 }));
  add("3.2", "valid text, text with RSV2, ping -> echo, 1002, no pong", rsvCase({ rsv: 2, before: true }));
  add("3.3", "valid text, text with RSV2+RSV3, ping (frame chops)", rsvCase({ rsv: 3, before: true }));
  if (!deflate) add("3.4", "valid text, text with RSV1, ping (octet chops)", rsvCase({ rsv: 4, before: true, chop: "octet" }));
  else
    add("3.4", "deflate: valid text, then RSV1 on a continuation frame, ping (octet chops) -> 1002", async (ctx) => {
      const c = await ctx.open();
      const frames = [...(await c.messageFrames(b("Hello, world!")))];
      const [f1] = await parts(c, ["frag", "ment"]); // first fragment: TEXT, RSV1, FIN=0
      frames.push(f1, c.frame({ op: OP.CONT, fin: true, rsv: 4, payload: b("more") }));
      frames.push(ping(c, ""));
      await writeFrames(c, frames, "octet");
      return expectEchoThenFail(c, b("Hello, world!"), false, FAIL_1002);
    });
  add("3.5", "binary frame with RSV1+RSV3 -> 1002", rsvCase({ rsv: 5, op: OP.BINARY, payload: Buffer.from(Array.from({ length: 256 }, (_, i) => i)) }));
  add("3.6", "ping with RSV1+RSV2 -> 1002", rsvCase({ rsv: 6, op: OP.PING, payload: "" }));
  add("3.7", "close with all RSV bits -> 1002", rsvCase({ rsv: 7, op: OP.CLOSE, payload: closePayload(1000) }));

  // 4: reserved opcodes.
  const opCase = (op, payload, before) => rsvCase({ rsv: 0, op, payload, before });
  [[1, 3, false], [2, 4, false], [3, 5, true], [4, 6, true], [5, 7, true]].forEach(([i, op, before]) =>
    add(`4.1.${i}`, `reserved data opcode ${op}${before ? " between a valid text and a ping" : ""} -> 1002`, opCase(op, i === 1 ? "" : "reserved opcode payload", before)));
  [[1, 11, false], [2, 12, false], [3, 13, true], [4, 14, true], [5, 15, true]].forEach(([i, op, before]) =>
    add(`4.2.${i}`, `reserved control opcode ${op}${before ? " between a valid text and a ping" : ""} -> 1002`, opCase(op, i === 1 ? "" : "reserved opcode payload", before)));

  // 5: fragmentation.
  add("5.1", "ping in 2 fragments -> 1002", async (ctx) => {
    const c = await ctx.open();
    await writeFrames(c, [c.frame({ op: OP.PING, fin: false, payload: b("fragment1") }), c.frame({ op: OP.CONT, payload: b("fragment2") })]);
    await expectFail(c, FAIL_1002);
  });
  add("5.2", "pong in 2 fragments -> 1002", async (ctx) => {
    const c = await ctx.open();
    await writeFrames(c, [c.frame({ op: OP.PONG, fin: false, payload: b("fragment1") }), c.frame({ op: OP.CONT, payload: b("fragment2") })]);
    await expectFail(c, FAIL_1002);
  });
  ["whole", "frame", "octet"].forEach((chop, i) =>
    add(`5.${3 + i}`, `text in 2 fragments (${chop} chops)`, async (ctx) => {
      const c = await ctx.open();
      await writeFrames(c, await parts(c, ["fragment1", "fragment2"]), chop);
      await expectMessage(c, b("fragment1fragment2"), false);
      await closeNormal(c);
    }));
  ["whole", "frame", "octet"].forEach((chop, i) =>
    add(`5.${6 + i}`, `text in 2 fragments with a ping between (${chop} chops): pong, then message`, async (ctx) => {
      const c = await ctx.open();
      const [f1, f2] = await parts(c, ["fragment1", "fragment2"]);
      await writeFrames(c, [f1, ping(c, "pongme!"), f2], chop);
      await expectPong(c, b("pongme!"));
      await expectMessage(c, b("fragment1fragment2"), false);
      await closeNormal(c);
    }));
  const orphan = (fin, chop) => async (ctx) => {
    const c = await ctx.open();
    const frames = [c.frame({ op: OP.CONT, fin, payload: b("non-continuation payload") }), ...(await c.messageFrames(b("Hello, world!")))];
    await writeFrames(c, frames, chop);
    await expectFail(c, FAIL_1002);
  };
  ["whole", "frame", "octet"].forEach((chop, i) => add(`5.${9 + i}`, `continuation FIN=1 with nothing to continue (${chop} chops) -> 1002`, orphan(true, chop)));
  ["whole", "frame", "octet"].forEach((chop, i) => add(`5.${12 + i}`, `continuation FIN=0 with nothing to continue (${chop} chops) -> 1002`, orphan(false, chop)));
  add("5.15", "valid fragmented text, then orphan continuation -> echo, 1002", async (ctx) => {
    const c = await ctx.open();
    const frames = [...(await parts(c, ["fragment1", "fragment2"])), c.frame({ op: OP.CONT, fin: false, payload: b("fragment3") }), c.frame({ op: OP.TEXT, payload: b("fragment4") })];
    await writeFrames(c, frames);
    return expectEchoThenFail(c, b("fragment1fragment2"), false, FAIL_1002);
  });
  const badSeq = (firstFin) => async (ctx) => {
    const c = await ctx.open();
    const frames = [];
    for (let k = 0; k < 2; k++)
      frames.push(c.frame({ op: OP.CONT, fin: firstFin, payload: b("fragment1") }), c.frame({ op: OP.TEXT, fin: false, payload: b("fragment2") }), c.frame({ op: OP.CONT, payload: b("fragment3") }));
    await writeFrames(c, frames);
    await expectFail(c, FAIL_1002);
  };
  add("5.16", "continuation FIN=0, text, continuation (twice) -> 1002", badSeq(false));
  add("5.17", "continuation FIN=1, text, continuation (twice) -> 1002", badSeq(true));
  add("5.18", "two text opcodes in one message -> 1002", async (ctx) => {
    const c = await ctx.open();
    const [f1] = await parts(c, ["fragment1", "x"]);
    await writeFrames(c, [f1, c.frame({ op: OP.TEXT, payload: b("fragment2") })]);
    await expectFail(c, FAIL_1002);
  });
  const fiveFrags = (octet) => async (ctx) => {
    const c = await ctx.open();
    const f = await parts(c, ["fragment1", "fragment2", "fragment3", "fragment4", "fragment5"]);
    const send = (list) => writeFrames(c, list, octet ? "octet" : "frame");
    await send([f[0], f[1], ping(c, "pongme 1!")]);
    await expectPong(c, b("pongme 1!"));
    await sleep(ctx.full ? 1000 : 200);
    await send([f[2], f[3], ping(c, "pongme 2!"), f[4]]);
    await expectPong(c, b("pongme 2!"));
    await expectMessage(c, b("fragment1fragment2fragment3fragment4fragment5"), false);
    await closeNormal(c);
  };
  add("5.19", "5-fragment text with pings between and a pause", fiveFrags(false));
  add("5.20", "5-fragment text with pings between and a pause (octet chops)", fiveFrags(true));

  // 6.1-6.4: UTF-8 handling across fragments.
  const HELLO = b("Hello-µ@ßöäüàá-UTF-8!!");
  const fragEcho = (list) => async (ctx) => {
    const c = await ctx.open();
    await writeFrames(c, await parts(c, list));
    await expectMessage(c, Buffer.concat(list.map(P)), false);
    await closeNormal(c);
  };
  const octets = (buf) => Array.from(buf, (x) => Buffer.from([x]));
  add("6.1.1", "empty text message", echoCase(Buffer.alloc(0), false));
  add("6.1.2", "text in 3 empty fragments", fragEcho(["", "", ""]));
  add("6.1.3", "text in 3 fragments, first and last empty", fragEcho(["", "middle frame payload", ""]));
  add("6.2.1", "valid UTF-8 in one frame", echoCase(HELLO, false));
  add("6.2.2", "valid UTF-8 in 2 fragments split on a code point boundary", fragEcho([HELLO.subarray(0, 13), HELLO.subarray(13)]));
  add("6.2.3", "valid UTF-8 in 1-byte fragments (splits inside code points)", fragEcho(octets(HELLO)));
  add("6.2.4", "valid κόσμε in 1-byte fragments", fragEcho(octets(KOSME)));
  const BAD = Buffer.concat([KOSME, Buffer.from([0xed, 0xa0, 0x80]), b("edited")]);
  add("6.3.1", "invalid UTF-8 text (surrogate) in one frame -> 1007", async (ctx) => {
    const c = await ctx.open();
    await c.sendMessage(BAD);
    await expectFail(c, [1007]);
  });
  add("6.3.2", "invalid UTF-8 text in 1-byte fragments -> 1007", async (ctx) => {
    const c = await ctx.open();
    await writeFrames(c, await parts(c, octets(BAD)));
    await expectFail(c, [1007]);
  });
  // 6.4: fail fast. OK = failed right after the part holding the bad byte; NON-STRICT = only
  // after the whole message. Without deflate, issue 3 requires OK; with deflate a server that
  // inflates whole messages can only be NON-STRICT, which is allowed there.
  const P1 = KOSME;
  const P2 = Buffer.from([0xf4, 0x90, 0x80, 0x80]); // U+110000: invalid at 0x90, byte 12
  const P3 = b("edited");
  const FF = Buffer.concat([P1, P2, P3]);
  const failFast = (split, asChops) => async (ctx) => {
    const c = await ctx.open();
    const pieces = split === "codepoint" ? [P1, P2, P3] : [FF.subarray(0, 12), FF.subarray(12, 13), FF.subarray(13)];
    const pause = ctx.full ? 1000 : 300;
    let sends;
    if (!asChops) sends = await parts(c, pieces);
    else {
      // One frame, written in 3 TCP chops. With deflate the parts are sync-flushed so each chop
      // carries the compressed bytes of its part.
      const bodies = ctx.deflate ? await c.deflater.compressParts(pieces) : pieces;
      const frame = c.frame({ op: OP.TEXT, rsv: ctx.deflate ? 4 : 0, payload: Buffer.concat(bodies) });
      const hl = frame.length - Buffer.concat(bodies).length;
      const cut1 = hl + bodies[0].length;
      const cut2 = cut1 + bodies[1].length;
      sends = [frame.subarray(0, cut1), frame.subarray(cut1, cut2), frame.subarray(cut2)];
    }
    await c.write(sends[0]);
    await expectQuiet(c, pause, "after the valid first part");
    await c.write(sends[1]);
    // Event-driven: a fail-fast server answers within milliseconds; the long window only keeps
    // a loaded machine from turning OK into NON-STRICT.
    const ev = await c.next(ctx.t(3000));
    if (ev.type === "close" || ev.type === "end") {
      c.events.unshift(ev);
      await expectFail(c, [1007]);
      return undefined;
    }
    if (ev.type !== "timeout") fail(`after the invalid byte expected failure, got ${describe(ev)}`);
    await c.write(sends[2]);
    await expectFail(c, [1007]);
    if (!ctx.deflate) fail("server failed only after the whole message, not as soon as the invalid byte arrived (NON-STRICT; issue 3 requires fail-fast)");
    return NON_STRICT;
  };
  add("6.4.1", "fail fast: invalid code point in the 2nd of 3 frames -> 1007 at once", failFast("codepoint", false));
  add("6.4.2", "fail fast: 2nd frame is only the invalid byte -> 1007 at once", failFast("byte", false));
  add("6.4.3", "fail fast inside one frame: 3 TCP chops, invalid in the 2nd -> 1007 at once", failFast("codepoint", true));
  add("6.4.4", "fail fast inside one frame: 2nd chop is only the invalid byte -> 1007 at once", failFast("byte", true));

  // 6.5-6.23: the stress list.
  UTF8_GROUPS.forEach(([title, list], gi) =>
    list.forEach(([valid, payload], i) => {
      if (valid !== isUtf8(payload)) throw new Error(`utf8-sequences: 6.${gi + 5}.${i + 1} marked ${valid} but is ${!valid}`);
      add(`6.${gi + 5}.${i + 1}`, `${title}: ${payload.toString("hex")} ${valid ? "(valid: echo)" : "-> 1007"}`, async (ctx) => {
        const c = await ctx.open();
        await c.sendMessage(payload);
        if (valid) {
          await expectMessage(c, payload, false);
          await closeNormal(c);
        } else await expectFail(c, [1007]);
      });
    }));

  // 7: closing.
  add("7.1.1", "message then close", async (ctx) => {
    const c = await ctx.open();
    await c.sendMessage(b("Hello World!"));
    await expectMessage(c, b("Hello World!"), false);
    await closeNormal(c);
  });
  const afterClose = (extra) => async (ctx) => {
    const c = await ctx.open();
    const frames = [c.frame({ op: OP.CLOSE, payload: closePayload(1000) }), ...(await extra(c))];
    c.closeSent = true;
    await writeFrames(c, frames);
    const ev = await c.next();
    if (ev.type !== "close") fail(`expected the server's close reply, got ${describe(ev)}`);
    if (ev.code !== null && ev.code !== 1000) fail(`server replied close code ${ev.code}, expected 1000`);
    await expectEnd(c);
  };
  add("7.1.2", "two close frames", afterClose(async (c) => [c.frame({ op: OP.CLOSE, payload: closePayload(1000) })]));
  add("7.1.3", "ping after close: no pong", afterClose(async (c) => [ping(c, "Hello World!")]));
  add("7.1.4", "text after close: no echo", afterClose(async (c) => c.messageFrames(b("Hello World!"))));
  add("7.1.5", "fragment, close, last fragment: no message", async (ctx) => {
    const c = await ctx.open();
    const [f1, f2] = await parts(c, ["fragment1", "fragment2"]);
    c.closeSent = true;
    await writeFrames(c, [f1, c.frame({ op: OP.CLOSE, payload: closePayload(1000) }), f2]);
    const ev = await c.next();
    if (ev.type !== "close") fail(`expected the server's close reply, got ${describe(ev)}`);
    if (ev.code !== null && ev.code !== 1000) fail(`server replied close code ${ev.code}, expected 1000`);
    await expectEnd(c);
  });
  add("7.1.6", "256 KiB message, close, ping", async (ctx) => {
    const c = await ctx.open();
    const big = textOf(256 * 1024);
    const frames = [...(await c.messageFrames(big)), c.frame({ op: OP.CLOSE, payload: closePayload(1000) }), ping(c, "Hello World!")];
    c.closeSent = true;
    await writeFrames(c, frames, "whole");
    let ev = await c.next(ctx.t(10000));
    let res = undefined;
    if (ev.type === "message") {
      if (!ev.data.equals(big)) fail("echo of the 256 KiB message differs");
      ev = await c.next();
    } else res = NON_STRICT;
    if (ev.type !== "close") fail(`expected the server's close reply, got ${describe(ev)}`);
    if (ev.code !== null && ev.code !== 1000) fail(`server replied close code ${ev.code}, expected 1000`);
    await expectEnd(c);
    return res;
  });
  add("7.3.1", "close without payload", async (ctx) => {
    const c = await ctx.open();
    await closeNormal(c, { payload: Buffer.alloc(0), allowed: [1000] });
  });
  add("7.3.2", "close with 1-byte payload -> 1002", async (ctx) => {
    const c = await ctx.open();
    c.closeSent = true;
    await c.write(c.frame({ op: OP.CLOSE, payload: Buffer.from([0x03]) }));
    await expectFail(c, FAIL_1002);
  });
  add("7.3.3", "close 1000 without reason", async (ctx) => closeNormal(await ctx.open(), { code: 1000 }));
  add("7.3.4", "close 1000 with reason", async (ctx) => closeNormal(await ctx.open(), { payload: closePayload(1000, b("Hello World!")) }));
  add("7.3.5", "close 1000 with 123-byte reason", async (ctx) => closeNormal(await ctx.open(), { payload: closePayload(1000, rep(0x2a, 123)) }));
  add("7.3.6", "close with 124-byte reason (126-byte control frame) -> 1002", async (ctx) => {
    const c = await ctx.open();
    c.closeSent = true;
    await c.write(c.frame({ op: OP.CLOSE, payload: closePayload(1000, rep(0x2a, 124)) }));
    await expectFail(c, FAIL_1002);
  });
  add("7.5.1", "close reason with invalid UTF-8 -> 1002/1007", async (ctx) => {
    const c = await ctx.open();
    c.closeSent = true;
    await c.write(c.frame({ op: OP.CLOSE, payload: closePayload(1000, BAD) }));
    await expectFail(c, [1002, 1007]);
  });
  [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999].forEach((code, i) =>
    add(`7.7.${i + 1}`, `valid close code ${code}: clean close`, async (ctx) => closeNormal(await ctx.open(), { code, allowed: [1000, code] })));
  [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999].forEach((code, i) =>
    add(`7.9.${i + 1}`, `invalid close code ${code} -> 1002`, async (ctx) => {
      const c = await ctx.open();
      c.closeSent = true;
      await c.write(c.frame({ op: OP.CLOSE, payload: closePayload(code) }));
      await expectFail(c, FAIL_1002);
    }));
  // 7.13: informational in the list: any orderly end (close reply or failure) passes.
  [5000, 65535].forEach((code, i) =>
    add(`7.13.${i + 1}`, `close code ${code} (informational: server must end the connection sanely)`, async (ctx) => {
      const c = await ctx.open();
      c.closeSent = true;
      await c.write(c.frame({ op: OP.CLOSE, payload: closePayload(code) }));
      await expectFail(c, [1000, 1002, code]);
    }));

  // 9: limits. Trimmed unless full: 9.1/9.2 up to 1 MiB, 9.3/9.4 with 256 KiB messages (so 64 B
  // fragments make 4096 frames, not 65,536), 9.5/9.6 256 KiB, 9.7/9.8 100 round trips.
  const MiB = 1024 * 1024;
  const big = (n, binary) => (binary ? rep(0xfe, n) : textOf(n));
  for (const [g, binary] of [[1, false], [2, true]])
    [64 * 1024, 256 * 1024, MiB, 4 * MiB, 8 * MiB, 16 * MiB].forEach((n, i) => {
      const size = full ? n : Math.min(n, MiB);
      add(`9.${g}.${i + 1}`, `${binary ? "binary" : "text"} message of ${size} bytes${size < n ? ` (trimmed from ${n})` : ""}`, echoCase(big(size, binary), binary, { ms: 100000 }), { timeoutMs: 110000 });
    });
  for (const [g, binary] of [[3, false], [4, true]])
    [64, 256, 1024, 4096, 16384, 65536, 256 * 1024, MiB, 4 * MiB].forEach((frag, i) => {
      const n = full ? (i === 8 ? 8 * MiB : 4 * MiB) : 256 * 1024;
      const size = full ? frag : Math.min(frag, n);
      add(`9.${g}.${i + 1}`, `${binary ? "binary" : "text"} ${n} bytes in ${Math.ceil(n / size)} fragments of ${size}${full ? "" : " (trimmed)"}`, echoCase(big(n, binary), binary, { fragSize: size, ms: 100000 }), { timeoutMs: 110000 });
    });
  for (const [g, binary] of [[5, false], [6, true]])
    [64, 128, 256, 512, 1024, 2048].forEach((chop, i) => {
      const n = full ? MiB : 256 * 1024;
      add(`9.${g}.${i + 1}`, `${binary ? "binary" : "text"} ${n} bytes written in ${chop}-byte chops${full ? "" : " (trimmed)"}`, echoCase(big(n, binary), binary, { chop, ms: 100000 }), { timeoutMs: 110000 });
    });
  for (const [g, binary] of [[7, false], [8, true]])
    [0, 16, 64, 256, 1024, 4096].forEach((n, i) => {
      const count = full ? 1000 : 100;
      add(`9.${g}.${i + 1}`, `${count} round trips of ${n}-byte ${binary ? "binary" : "text"} messages`, async (ctx) => {
        const c = await ctx.open();
        const payload = big(n, binary);
        for (let k = 0; k < count; k++) {
          await c.sendMessage(payload, { binary });
          await expectMessage(c, payload, binary);
        }
        await closeNormal(c);
      }, { timeoutMs: 110000 });
    });

  // 10: auto-fragmentation.
  add("10.1.1", "64 KiB text in 1300-byte frames: one echoed message", echoCase(textOf(65536), false, { fragSize: 1300 }));

  // X: what issue 3 asks beyond the list.
  add("X.1", "unmasked client frame -> 1002", async (ctx) => {
    const c = await ctx.open();
    await c.write(c.frame({ op: OP.TEXT, payload: b("Hello, world!"), mask: false }));
    await expectFail(c, FAIL_1002);
  });
  add("X.2", "64-bit length with the most significant bit set -> 1002 (or 1009)", async (ctx) => {
    const c = await ctx.open();
    const f = c.frame({ op: OP.BINARY, payload: b("x"), forceLen64: true });
    f[2] |= 0x80;
    await c.write(f);
    await expectFail(c, [1002, 1009]); // reserved bit (RFC 6455 5.2) or simply too big
  });
  add("X.3", "frame header declaring 1 GiB -> 1009 before any payload", async (ctx) => {
    const c = await ctx.open();
    const f = c.frame({ op: OP.BINARY, payload: b("xxxx"), declaredLength: 1 << 30 });
    await c.write(f);
    await expectFail(c, [1009]);
  });
  add("X.4", "fragmented message growing past the limit (1 GiB continuation) -> 1009", async (ctx) => {
    const c = await ctx.open();
    const first = c.frame({ op: OP.BINARY, fin: false, payload: rep(0xfe, 1024) });
    const second = c.frame({ op: OP.CONT, payload: b("xxxx"), declaredLength: 1 << 30 });
    await writeFrames(c, [first, second]);
    await expectFail(c, [1009]);
  });
  add("X.5", "non-minimal 64-bit length for a 5-byte message: echoed or 1002", async (ctx) => {
    // RFC 6455 5.2 says the minimal encoding MUST be used, but servers commonly accept it; both
    // outcomes are allowed, a crash or silence is not.
    const c = await ctx.open();
    await c.write(c.frame({ op: OP.BINARY, payload: b("hello"), forceLen64: true }));
    const ev = await c.next();
    if (ev.type === "message") {
      if (!ev.data.equals(b("hello")) || !ev.binary) fail(`echo differs: ${describe(ev)}`);
      return closeNormal(c);
    }
    c.events.unshift(ev);
    await expectFail(c, FAIL_1002);
  });

  // L: configurable limits, on a second server started with small limits (ferry's ws-echo
  // flags): exactly the limit passes, one over gets 1009. Not run with --url.
  const limitCase = (flags, ok, over) => async (ctx) => {
    if (!ctx.spawn) return "skipped";
    const s2 = await ctx.spawn(flags);
    const c = await ctx.open({ server: s2 });
    await ok(c);
    const c2 = await ctx.open({ server: s2 });
    await over(c2);
    const c3 = await ctx.open({ server: s2 }); // and it still serves
    await c3.sendMessage(b("still here"));
    await expectMessage(c3, b("still here"), false);
    await closeNormal(c3);
  };
  add("L.1", "--max-message 1000: 1000-byte message echoed, 1001 bytes -> 1009", limitCase(["--max-message", "1000"],
    async (c) => {
      await c.sendMessage(rep(0x41, 1000));
      await expectMessage(c, rep(0x41, 1000), false);
      await closeNormal(c);
    },
    async (c) => {
      await c.sendMessage(rep(0x41, 1001));
      await expectFail(c, [1009]);
    }));
  add("L.2", "--max-message 1000: fragments adding up to 1001 bytes -> 1009", limitCase(["--max-message", "1000"],
    async (c) => {
      await writeFrames(c, await parts(c, [rep(0x41, 500), rep(0x41, 500)]));
      await expectMessage(c, rep(0x41, 1000), false);
      await closeNormal(c);
    },
    async (c) => {
      await writeFrames(c, await parts(c, [rep(0x41, 500), rep(0x41, 501)]));
      await expectFail(c, [1009]);
    }));
  add("L.3", "--max-fragments 4: 4 fragments echoed, 5 -> 1009", limitCase(["--max-fragments", "4"],
    async (c) => {
      await writeFrames(c, await parts(c, ["a", "b", "c", "d"]));
      await expectMessage(c, b("abcd"), false);
      await closeNormal(c);
    },
    async (c) => {
      await writeFrames(c, await parts(c, ["a", "b", "c", "d", "e"]));
      await expectFail(c, [1009]);
    }));
  if (deflate)
    add("L.4", "--max-message 1000 with deflate: 1000 bytes inflated echoed, 1001 -> 1009", limitCase(["--max-message", "1000"],
      async (c) => {
        await c.sendMessage(rep(0x41, 1000));
        await expectMessage(c, rep(0x41, 1000), false);
        await closeNormal(c);
      },
      async (c) => {
        await c.sendMessage(rep(0x41, 1001)); // a few compressed bytes: the inflated size counts
        await expectFail(c, [1009]);
      }));
  if (deflate)
    add("T.1", "--deflate-threshold 1024: 1023-byte echo uncompressed, 1024-byte echo compressed", async (ctx) => {
      if (!ctx.spawn) return "skipped";
      const s2 = await ctx.spawn(["--deflate-threshold", "1024"]);
      const c = await ctx.open({ server: s2 });
      for (const [n, z] of [[1023, false], [1024, true]]) {
        await c.sendMessage(textOf(n));
        const ev = await c.next();
        if (ev.type !== "message" || !ev.data.equals(textOf(n))) fail(`expected the ${n}-byte echo, got ${describe(ev)}`);
        if (ev.compressed !== z) fail(`${n}-byte echo was ${ev.compressed ? "" : "not "}compressed with threshold 1024`);
      }
      await closeNormal(c);
    });

  if (!deflate) {
    // H: opening handshake checks, answered with an HTTP error before any 101.
    const req = (lines) => lines.filter(Boolean).join("\r\n") + "\r\n\r\n";
    const hs = (over = {}) => {
      const h = {
        method: "GET", version: "HTTP/1.1", upgrade: "Upgrade: websocket", connection: "Connection: Upgrade",
        key: "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", ver: "Sec-WebSocket-Version: 13", ...over,
      };
      return (ctx) => req([`${h.method} ${ctx.path} ${h.version}`, `Host: 127.0.0.1:${ctx.port}`, h.upgrade, h.connection, h.key, h.ver]);
    };
    const hsCase = (make, statuses, check) => async (ctx) => {
      const r = await rawRequest({ port: ctx.port, host: ctx.host, text: make(ctx) });
      if (r.status === 101) fail(`handshake accepted with 101, expected ${statuses.join("/")}`);
      if (!statuses.includes(r.status)) fail(`answered ${r.statusLine ?? (r.status === 0 ? "nothing (connection closed)" : "nothing (timeout)")}, expected HTTP ${statuses.join(" or ")}`);
      if (check) check(r);
    };
    add("H.1", "Sec-WebSocket-Version 8 -> 400/426 naming version 13", hsCase(hs({ ver: "Sec-WebSocket-Version: 8" }), [400, 426], (r) => {
      if (!/\b13\b/.test(r.headers["sec-websocket-version"] ?? "")) fail(`no "Sec-WebSocket-Version: 13" in the refusal (RFC 6455 4.2.2): ${JSON.stringify(r.headers)}`);
    }));
    add("H.2", "missing Sec-WebSocket-Key -> 400", hsCase(hs({ key: "" }), [400]));
    add("H.3", "Sec-WebSocket-Key not 16 bytes of base64 -> 400", hsCase(hs({ key: "Sec-WebSocket-Key: c2hvcnQ=" }), [400]));
    add("H.4", "missing Sec-WebSocket-Version -> 400/426", hsCase(hs({ ver: "" }), [400, 426]));
    add("H.5", "POST with upgrade headers -> 4xx", hsCase(hs({ method: "POST" }), [400, 404, 405]));
    add("H.6", "HTTP/1.0 upgrade request -> 4xx", hsCase(hs({ version: "HTTP/1.0" }), [400, 426, 505]));
    add("H.7", "Upgrade: h2c instead of websocket -> not 101", hsCase(hs({ upgrade: "Upgrade: h2c" }), [400, 404, 426]));
    // Deflate offered to a server that does not do it: declined, echo uncompressed.
    add("O.1", "permessage-deflate offered to the server without --deflate: declined, echo works", async (ctx) => {
      const c = await ctx.open({ offers: ["permessage-deflate; client_max_window_bits"], allowDecline: true });
      if (c.deflate) {
        if (ctx.serverHasDeflate === false) fail("server without --deflate accepted permessage-deflate");
      }
      await c.sendMessage(b("Hello, world!"));
      await expectMessage(c, b("Hello, world!"), false);
      await closeNormal(c);
    });
  }

  if (deflate) {
    // D: permessage-deflate specifics.
    add("D.1", "RSV1 on a ping -> 1002", rsvCase({ rsv: 4, op: OP.PING, payload: "" }));
    add("D.2", "uncompressed message (RSV1 clear) on a deflate connection: echoed", async (ctx) => {
      const c = await ctx.open();
      await c.sendMessage(b("uncompressed on purpose"), { compress: false });
      await expectMessage(c, b("uncompressed on purpose"), false);
      await closeNormal(c);
    });
    add("D.3", "RSV1 message that is not deflate data -> 1007/1002", async (ctx) => {
      const c = await ctx.open();
      await c.write(c.frame({ op: OP.BINARY, rsv: 4, payload: Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00, 0x11]) }));
      await expectFail(c, [1007, 1002]);
    });
    add("D.4", "decompression bomb (256 MiB of zeros, ~256 KiB compressed) -> 1009", async (ctx) => {
      const c = await ctx.open({ offers: ["permessage-deflate; client_no_context_takeover; client_max_window_bits"] });
      const body = await c.compress(Buffer.alloc(256 * MiB));
      await c.write(c.frame({ op: OP.BINARY, rsv: 4, payload: body }));
      await expectFail(c, [1009], ctx.t(20000));
    }, { timeoutMs: 60000 });
    add("D.5", "offer with an unknown parameter: declined (or a later valid offer taken)", async (ctx) => {
      const c = await ctx.open({ offers: ["permessage-deflate; foo=bar", "permessage-deflate; client_max_window_bits"], allowDecline: true, checkOfferIndex: 1 });
      await c.sendMessage(b("Hello, world!"));
      await expectMessage(c, b("Hello, world!"), false);
      await closeNormal(c);
    });
    add("D.6", "no offer to the deflate server: no extension, echo works", async (ctx) => {
      const c = await ctx.open({ offers: [], allowDecline: true });
      if (c.deflate) fail("extension negotiated without an offer");
      await c.sendMessage(b("Hello, world!"));
      await expectMessage(c, b("Hello, world!"), false);
      await closeNormal(c);
    });
    add("D.7", "10 compressed messages with context takeover, then a 1-byte-fragment one", async (ctx) => {
      const c = await ctx.open();
      for (let k = 0; k < 10; k++) {
        const m = b(`{"n":${k},"text":"the same words again and again and again"}`);
        await c.sendMessage(m);
        await expectMessage(c, m, false);
      }
      const m = b("the same words again, fragmented");
      await writeFrames(c, await parts(c, octets(m)));
      await expectMessage(c, m, false);
      await closeNormal(c);
    });

    // 12 and 13: compressed echo of corpora, and every client offer.
    const sizes = [[16, 0], [64, 0], [256, 0], [1024, 0], [4096, 0], [8192, 0], [16384, 0], [32768, 0], [65536, 0], [131072, 0],
      [8192, 256], [16384, 256], [32768, 256], [65536, 256], [131072, 256], [131072, 1024], [131072, 4096], [131072, 32768]];
    const corpora = makeCorpora();
    const streamCase = (corpus, len, frameSize, offers) => async (ctx) => {
      const c = await ctx.open({ offers });
      const count = full ? 1000 : 20;
      let at = 0;
      for (let k = 0; k < count; k++) {
        const msg = Buffer.alloc(len);
        for (let w = 0; w < len; ) {
          const n = Math.min(len - w, corpus.data.length - at);
          corpus.data.copy(msg, w, at, at + n);
          w += n;
          at = (at + n) % corpus.data.length;
        }
        await c.sendMessage(msg, { binary: corpus.binary, frameSize });
        await expectMessage(c, msg, corpus.binary, ctx.t(10000));
      }
      await closeNormal(c);
    };
    corpora.forEach((corpus, j) =>
      sizes.forEach(([len, frameSize], i) =>
        add(`12.${j + 1}.${i + 1}`, `${corpus.name}: ${full ? 1000 : 20} messages of ${len} bytes${frameSize ? `, compressed bytes in ${frameSize}-byte frames` : ""}`, streamCase(corpus, len, frameSize, undefined), { timeoutMs: 480000 })));
    const CMWB = "client_max_window_bits";
    const offerSets = [
      ["default offer", [`permessage-deflate; ${CMWB}`]],
      ["server_no_context_takeover", [`permessage-deflate; ${CMWB}; server_no_context_takeover`]],
      ["server_max_window_bits=9", [`permessage-deflate; ${CMWB}; server_max_window_bits=9`]],
      ["server_max_window_bits=15", [`permessage-deflate; ${CMWB}; server_max_window_bits=15`]],
      ["server_no_context_takeover, server_max_window_bits=9", [`permessage-deflate; ${CMWB}; server_no_context_takeover; server_max_window_bits=9`]],
      ["server_no_context_takeover, server_max_window_bits=15", [`permessage-deflate; ${CMWB}; server_no_context_takeover; server_max_window_bits=15`]],
      ["3 offers", [`permessage-deflate; ${CMWB}; server_no_context_takeover; server_max_window_bits=9`, `permessage-deflate; ${CMWB}; server_no_context_takeover`, `permessage-deflate; ${CMWB}`]],
      // Beyond the list (issue 3: client parameters too).
      ["client_no_context_takeover", ["permessage-deflate; client_no_context_takeover"]],
      ["client_max_window_bits=9", ["permessage-deflate; client_max_window_bits=9"]],
      ["client_max_window_bits=12, server_max_window_bits=12, both no_context_takeover", ["permessage-deflate; client_max_window_bits=12; server_max_window_bits=12; client_no_context_takeover; server_no_context_takeover"]],
      ["bare permessage-deflate (no client_max_window_bits)", ["permessage-deflate"]],
    ];
    const json = corpora[0];
    offerSets.forEach(([name, offers], j) => {
      const list = j < 7 ? sizes : sizes.filter((_, i) => [0, 4, 9, 14].includes(i));
      list.forEach(([len, frameSize], i) =>
        add(`13.${j + 1}.${i + 1}`, `offer ${name}: ${len}-byte JSON messages${frameSize ? ` in ${frameSize}-byte frames` : ""}`, streamCase(json, len, frameSize, offers), { timeoutMs: 480000 }));
    });
  }
  return cases;
}

// Five deterministic corpora standing in for the list's JSON, BMP, German text, HTML and PDF
// files (about 256 KiB each): JSON and HTML are ASCII and sent as text, the others as binary.
function makeCorpora() {
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  const N = 256 * 1024;
  const fill = (gen) => {
    const parts = [];
    let n = 0;
    while (n < N) {
      const p = Buffer.from(gen());
      parts.push(p);
      n += p.length;
    }
    return Buffer.concat(parts).subarray(0, N);
  };
  const words = ["habe", "nun", "ach", "Philosophie", "Juristerei", "und", "Medizin", "leider", "auch", "Theologie", "durchaus", "studiert", "mit", "heißem", "Bemühn", "da", "steh", "ich", "nun", "ich", "armer", "Tor", "bin", "so", "klug", "als", "wie", "zuvor", "Größe", "Übermut"];
  const ascii = (w) => w.replace(/[^\x00-\x7f]/g, "e");
  const json = fill(() => JSON.stringify({ id: Math.floor(rnd() * 1e6), name: ascii(pick(words)), tags: [ascii(pick(words)), ascii(pick(words))], score: Math.round(rnd() * 1000) / 10, active: rnd() > 0.5 }) + ",\n");
  const german = fill(() => `${pick(words)} ${pick(words)} ${pick(words)}${rnd() > 0.8 ? ".\n" : " "}`);
  const html = fill(() => `<div class="row"><span id="n${Math.floor(rnd() * 1000)}">${ascii(pick(words))}</span><a href="/p/${Math.floor(rnd() * 100)}">link</a></div>\n`);
  const bmp = Buffer.alloc(N);
  for (let i = 0; i < N; i++) bmp[i] = (Math.floor(i / 512) * 3 + Math.floor((i % 512) / 7) + (rnd() > 0.9 ? Math.floor(rnd() * 8) : 0)) & 0xff;
  const pdf = fill(() => (rnd() > 0.3 ? `${Math.floor(rnd() * 100)} 0 obj << /Type /Page /Length ${Math.floor(rnd() * 5000)} >> stream\n` : Buffer.from(Array.from({ length: 64 }, () => Math.floor(rnd() * 256)))));
  return [
    { name: "JSON (text)", data: json, binary: false },
    { name: "bitmap (binary)", data: bmp, binary: true },
    { name: "German text (binary)", data: german, binary: true },
    { name: "HTML (text)", data: html, binary: false },
    { name: "PDF-like (binary)", data: pdf, binary: true },
  ];
}
