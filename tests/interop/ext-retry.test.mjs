// docs/protocol.md 5.3 on the wire: a poll of an extension session says what the client has
// (got=) and a POST what came before it (tx=), so that a request a browser sends again by itself
// after its answer was lost (tests/browser/chaos-retry.test.mjs shows Chromium doing it) costs
// nothing: the lost answer's messages come again, a repeated POST is answered "ok" and not
// taken twice. Bad values close the session; official sessions ignore both parameters.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startEngine } from "../lib/events.mjs";
import { rawConnect, rawRequest, req } from "../lib/rawhttp.mjs";

let eng;
before(async () => {
  eng = await startEngine(["--transports", "polling,short-polling,sse,websocket", "--ping-interval", "20000",
    "--ping-timeout", "20000", "--short-poll-interval", "30"]);
});
after(async () => {
  assert.equal(await eng.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

const url = (q) => `${eng.url}${eng.path}?${new URLSearchParams({ EIO: "4", ...q })}`;
async function get(q) {
  const r = await fetch(url(q));
  return { status: r.status, body: await r.text() };
}
async function post(q, body) {
  const r = await fetch(url(q), { method: "POST", body, headers: { "content-type": "text/plain;charset=UTF-8" } });
  return { status: r.status, body: await r.text() };
}
async function open(transport, ext = true) {
  const r = await get({ transport, ...(ext ? { ferry: "1" } : {}) });
  assert.equal(r.status, 200);
  const hs = JSON.parse(r.body.slice(1));
  await eng.next((e) => e.event === "open" && e.sid === hs.sid);
  return { sid: hs.sid, hs, q: (x) => ({ transport, sid: hs.sid, ...x }) };
}
const texts = (sid) => eng.all("message").filter((e) => e.sid === sid).map((e) => e.text);

for (const transport of ["short-polling", "polling"]) {
  test(`${transport}: a poll whose answer was lost (the same GET again) gets its messages again`, async () => {
    const s = await open(transport);
    assert.ok(s.hs.ext.includes("resume"));
    assert.equal((await post(s.q({ tx: 0 }), "4one\x1e4two")).body, "ok");
    const first = await get(s.q({ got: 0 }));
    assert.equal(first.body, "4one\x1e4two");
    // The answer never reached the client: its retry carries the same got=0.
    assert.equal((await get(s.q({ got: 0 }))).body, "4one\x1e4two", "the lost answer's messages again, in order");
    // Partly lost: the client has one of them.
    assert.equal((await get(s.q({ got: 1 }))).body, "4two");
    assert.equal((await post(s.q({ tx: 2 }), "4three")).body, "ok");
    assert.equal((await get(s.q({ got: 2 }))).body, "4three", "nothing older once the client has it");
    assert.equal((await post(s.q({ tx: 3 }), "1")).body, "ok");
    assert.equal((await eng.closeOf(s.sid)).reason, "transport close");
  });

  test(`${transport}: a POST sent again (tx= below what was taken) is answered ok and its messages not taken twice`, async () => {
    const s = await open(transport);
    assert.equal((await post(s.q({ tx: 0 }), "4a\x1e4b")).body, "ok");
    assert.equal((await post(s.q({ tx: 0 }), "4a\x1e4b")).body, "ok", "the repeat is answered like the first");
    assert.equal((await post(s.q({ tx: 2 }), "4c")).body, "ok");
    assert.equal((await post(s.q({ tx: 2 }), "4c")).body, "ok");
    await eng.next((e) => e.event === "message" && e.sid === s.sid && e.text === "c");
    assert.deepEqual(texts(s.sid), ["a", "b", "c"], "each message taken once, in order");
    // Partly taken (a resend after an attach whose head a late POST took): only the rest.
    assert.equal((await post(s.q({ tx: 2 }), "4c\x1e4d")).body, "ok");
    await eng.next((e) => e.event === "message" && e.sid === s.sid && e.text === "d");
    assert.deepEqual(texts(s.sid), ["a", "b", "c", "d"], "the part taken already is skipped, the rest taken");
    // The client's count and the server's agree: a client ping says 4 were taken.
    assert.equal((await post(s.q({ tx: 4 }), "2c1:0")).body, "ok");
    const answers = [];
    let got = 0;
    while (answers.length < 50 && !answers.join("\x1e").includes("3c1:")) {
      const body = (await get(s.q({ got }))).body;
      answers.push(body);
      got += body.split("\x1e").filter((p) => p[0] === "4").length;
    }
    assert.equal(answers.join("\x1e"), "4a\x1e4b\x1e4c\x1e4d\x1e3c1:4", "each echoed once; srx is 4");
    assert.equal((await post(s.q({ tx: 4 }), "1")).body, "ok");
    assert.equal((await eng.closeOf(s.sid)).reason, "transport close");
  });
  // Issue 14 (the chaos run's switching client lost one message upstream within one session):
  // a POST of the transport the client left (here its held poll was cut) reaches the server
  // only after the attach, so it counts on the new transport of the same kind; the client,
  // told srx before it arrived, sends those messages again followed by new ones. The repeated
  // head is skipped, the new tail taken (it was all dropped, the new message lost).
  test(`${transport}: a resend after an attach that overlaps a late POST of the left transport: the new messages are taken`, async () => {
    const s = await open(transport);
    assert.equal((await post(s.q({ tx: 0 }), "4a")).body, "ok");
    await eng.next((e) => e.event === "message" && e.sid === s.sid && e.text === "a");
    // The old transport's POST of b and c is on its way; the client attaches with what it has.
    const at = await get(s.q({ rx: 0 }));
    assert.equal(at.status, 200);
    assert.equal(at.body.split("\x1e")[0], "6", "the attach took");
    const rx = at.body.split("\x1e").filter((p) => p[0] === "4").length;
    // Its client ping is answered: the server has taken 1 message (srx 1).
    assert.equal((await post(s.q({ tx: 3 }), "2c1:" + rx)).body, "ok");
    let got = rx, pong = "";
    for (let i = 0; i < 50 && !pong.includes("3c1:"); i++) {
      pong = (await get(s.q({ got }))).body;
      got += pong.split("\x1e").filter((p) => p[0] === "4").length;
    }
    assert.ok(pong.split("\x1e").includes("3c1:1"), `srx 1 (${pong})`);
    // Now the late POST of the old transport arrives, and is taken (b, c)...
    assert.equal((await post(s.q({ tx: 1 }), "4b\x1e4c")).body, "ok");
    // ... then the client's resend of everything after srx, with a new message d after it.
    assert.equal((await post(s.q({ tx: 1 }), "4b\x1e4c\x1e4d")).body, "ok");
    assert.equal((await post(s.q({ tx: 4 }), "4e")).body, "ok");
    await eng.next((e) => e.event === "message" && e.sid === s.sid && e.text === "e");
    assert.deepEqual(texts(s.sid), ["a", "b", "c", "d", "e"], "each message taken once, in order, none lost");
    // The counts agree: a client ping says 5 were taken.
    assert.equal((await post(s.q({ tx: 5 }), "2c2:" + got)).body, "ok");
    pong = "";
    for (let i = 0; i < 50 && !pong.includes("3c2:"); i++) {
      pong = (await get(s.q({ got }))).body;
      got += pong.split("\x1e").filter((p) => p[0] === "4").length;
    }
    assert.ok(pong.split("\x1e").includes("3c2:5"), `srx 5 (${pong})`);
    assert.equal((await post(s.q({ tx: 5 }), "1")).body, "ok");
    assert.equal((await eng.closeOf(s.sid)).reason, "transport close");
  });
}

// Issue 14 (the chaos runs' "outbox: emit 301 after 201 (a gap)": a batch lost inside one
// session): a POST whose tx= is above the messages taken says messages before it never came.
// Taking it would number its messages as the missing ones (positional), and the client, told
// srx, would never send those again. It is refused (409, nothing of it taken) and the session
// goes on: the client attaches and resends after srx.
test("a POST after a gap (tx= above what was taken) is refused with 409, nothing of it taken; the session goes on", async () => {
  const s = await open("polling");
  assert.equal((await post(s.q({ tx: 0 }), "4a")).body, "ok");
  await eng.next((e) => e.event === "message" && e.sid === s.sid && e.text === "a");
  const r = await post(s.q({ tx: 3 }), "2c1:0\x1e4d\x1e4e"); // b and c never arrived
  assert.equal(r.status, 409);
  assert.deepEqual(JSON.parse(r.body), { code: 3, message: "Messages missing: attach and resend" });
  assert.equal((await post(s.q({ tx: 3 }), "bAQID")).status, 409, "a binary message too");
  // A POST without messages is taken whatever its tx (an attach's client ping says the
  // client's count before it learns srx).
  assert.equal((await post(s.q({ tx: 5 }), "2c2:0")).body, "ok");
  let got = 0, answers = "";
  for (let i = 0; i < 50 && !answers.includes("3c2:"); i++) {
    const body = (await get(s.q({ got }))).body;
    answers += body + "\x1e";
    got += body.split("\x1e").filter((p) => p[0] === "4").length;
  }
  assert.ok(answers.split("\x1e").includes("3c2:1"), `srx 1: nothing of the refused POST was taken (${answers})`);
  assert.equal((await post(s.q({ tx: 1 }), "4b\x1e4c\x1e4d\x1e4e")).body, "ok", "the resend after srx");
  await eng.next((e) => e.event === "message" && e.sid === s.sid && e.text === "e");
  assert.deepEqual(texts(s.sid), ["a", "b", "c", "d", "e"], "each once, in order, none skipped");
  assert.match(eng.stderr(), /a POST after a gap \(tx 3, taken 1\): refused/);
  assert.equal((await post(s.q({ tx: 5 }), "1")).body, "ok");
  assert.equal((await eng.closeOf(s.sid)).reason, "transport close");
});

// A message on a probe before its "5" aborts the upgrade (Engine.IO) and is not taken: on an
// extension session the POST is not answered "ok" (its client would count it sent), but 409.
test("a message POSTed on an SSE probe before its 5 is answered 409 and not taken; the session stays on polling", async () => {
  const s = await open("polling");
  const ac = new AbortController();
  const stream = await fetch(url({ transport: "sse", sid: s.sid }), { headers: { accept: "text/event-stream" }, signal: ac.signal });
  assert.equal(stream.status, 200, "the probe stream");
  assert.equal((await post({ transport: "sse", sid: s.sid, tx: 0 }, "2probe")).body, "ok");
  const r = await post({ transport: "sse", sid: s.sid, tx: 0 }, "4x");
  assert.equal(r.status, 409, "not ok: the message was not taken");
  ac.abort();
  assert.equal((await post(s.q({ tx: 0 }), "4y")).body, "ok", "the session goes on on polling");
  await eng.next((e) => e.event === "message" && e.sid === s.sid && e.text === "y");
  assert.deepEqual(texts(s.sid), ["y"]);
  assert.equal((await post(s.q({ tx: 1 }), "1")).body, "ok");
  assert.equal((await eng.closeOf(s.sid)).reason, "transport close");
});

// The chaos runs' lost batch, step by step. Right after a promotion to SSE the client had two
// POSTs out at once (the "2probe" answer, racing "3probe", ended the busy mark of the "5"'s POST,
// and so on): the batch (b, c) and the next one (d). The next one reached the server first
// and was taken as if it followed (positional: d counted as message 2), then the batch was
// dropped as "taken already" (tx below the count), or, cut by the proxy, never came, and the
// client, told srx 2 on its attach, did not send it again: lost inside one session. Now the
// overtaking POST is refused (409) and the client resends from srx.
test("the lost batch's path: a POST that overtakes the one before it is refused (409); nothing skipped", async () => {
  const s = await open("polling");
  assert.equal((await post(s.q({ tx: 0 }), "4a")).body, "ok");
  await eng.next((e) => e.event === "message" && e.sid === s.sid && e.text === "a");
  const sse = { transport: "sse", sid: s.sid };
  const ac = new AbortController();
  assert.equal((await fetch(url(sse), { headers: { accept: "text/event-stream" }, signal: ac.signal })).status, 200);
  assert.equal((await post({ ...sse, tx: 1 }, "2probe")).body, "ok");
  assert.equal((await post({ ...sse, tx: 1 }, "5")).body, "ok", "on SSE");
  // d (tx 3) overtakes b, c (tx 1).
  const r = await post({ ...sse, tx: 3 }, "4d");
  assert.equal(r.status, 409, "after a gap: refused, not taken as message 2");
  assert.equal((await post({ ...sse, tx: 1 }, "4b\x1e4c")).body, "ok", "the batch, late, is taken whole");
  // The client (its d refused) attaches, learns srx 3, and sends d again.
  ac.abort();
  const at = await get(s.q({ rx: 0 }));
  assert.equal(at.status, 200);
  assert.equal((await post(s.q({ tx: 3 }), "4d")).body, "ok");
  await eng.next((e) => e.event === "message" && e.sid === s.sid && e.text === "d");
  assert.deepEqual(texts(s.sid), ["a", "b", "c", "d"], "each once, in order");
  assert.equal((await post(s.q({ tx: 4 }), "1")).body, "ok");
  assert.equal((await eng.closeOf(s.sid)).reason, "transport close");
});

// A request taken by the server: its request counter (ferry-test-engine's GET /__stats, which
// counts itself) moved past the stats requests made meanwhile. Bounded.
async function sendHeld(target) {
  const stats = async () => JSON.parse((await rawRequest(eng.port, req("GET", "/__stats"))).text).requests;
  const before = await stats();
  const c = await rawConnect(eng.port);
  c.write(req("GET", target));
  for (let k = 1; k <= 200; k++) {
    if ((await stats()) >= before + k + 1) return c;
  }
  throw new Error("the server never took the held request");
}

// The long chaos run (docs/reliability.md, Run 1): Chromium sends a GET again by itself when its
// connection dies before any byte of the answer (the proxy cut it), and the server may not have
// seen that connection close yet: the resend is a second GET while the first is held. On a
// session of ferry's client it replaces the held one (which carried nothing: it ends with a
// noop); Engine.IO's overlap rule (tests/interop/engine-badinput.test.mjs) stays for the others.
test("polling: a second GET while one is held replaces it: the session goes on, nothing lost or doubled", async () => {
  const s = await open("polling");
  const target = (q) => url(q).slice(eng.url.length);
  const a = await sendHeld(target(s.q({ got: 0 })));
  const aRes = a.response();
  const b = await sendHeld(target(s.q({ got: 0 }))); // the browser's resend of the same poll
  const bRes = b.response();
  const first = await aRes;
  assert.equal(first.status, 200, "the replaced poll is answered");
  assert.equal(first.text, "6", "with a noop: it carries nothing");
  a.destroy();
  assert.equal((await post(s.q({ tx: 0 }), "4x")).body, "ok");
  const second = await bRes;
  assert.equal(second.status, 200);
  assert.equal(second.text, "4x", "the new poll carries the echo, once");
  b.destroy();
  // The replaced poll's connection dying now costs nothing; the next poll says it has 1.
  assert.equal((await post(s.q({ tx: 1 }), "4y")).body, "ok");
  assert.equal((await get(s.q({ got: 1 }))).body, "4y", "only what came after");
  assert.deepEqual(texts(s.sid), ["x", "y"]);
  assert.equal((await post(s.q({ tx: 2 }), "1")).body, "ok");
  assert.equal((await eng.closeOf(s.sid)).reason, "transport close", "closed by the client, not by an overlap");
});

test("got= that is not a number, or beyond what was sent, closes the session (400 code 3)", async () => {
  for (const bad of ["x", "-1", "1", "99999999999999999999"]) {
    const s = await open("short-polling");
    const r = await get(s.q({ got: bad }));
    assert.equal(r.status, 400, `got=${bad}`);
    assert.equal(r.body, JSON.stringify({ code: 3, message: "Bad request" }));
    assert.equal((await eng.closeOf(s.sid)).reason, "parse error", `got=${bad}`);
  }
  // A bad tx= is ignored (the POST is taken as without it).
  const s = await open("short-polling");
  assert.equal((await post(s.q({ tx: "zz" }), "4ok")).body, "ok");
  await eng.next((e) => e.event === "message" && e.sid === s.sid && e.text === "ok");
  assert.equal((await post(s.q({}), "1")).body, "ok");
  await eng.closeOf(s.sid);
});

test("an official session (no extensions) ignores got= and tx=", async () => {
  const s = await open("polling", false);
  assert.equal((await post(s.q({ tx: 0 }), "4p")).body, "ok");
  assert.equal((await post(s.q({ tx: 0 }), "4p")).body, "ok");
  await eng.next((e) => e.event === "message" && e.sid === s.sid && e.text === "p");
  await eng.next((e) => e.event === "message" && e.sid === s.sid && e.text === "p");
  assert.equal((await get(s.q({ got: 0 }))).body, "4p\x1e4p", "both taken and echoed, as Engine.IO says");
  const held = get(s.q({ got: 0 })); // a poll as any other: held until there is something
  assert.equal((await post(s.q({}), "1")).body, "ok");
  assert.equal((await held).status, 200);
  await eng.closeOf(s.sid);
});
