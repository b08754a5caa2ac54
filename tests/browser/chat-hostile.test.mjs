// The chat (examples/chat on tools/ferry) through the hostile-network lab's bad networks
// (tests/lab/harness.mjs SCENARIOS: tools/ferry-proxy faults, Debian's nginx setups, both):
// alice's browser goes through the fault, bob's does not; both type a message every 400 ms for a few seconds while the fault
// acts, and afterwards each page must show every message exactly once, each sender's in the
// order sent, and alice's must all be taken by the server (no ○ left).
// make test runs a subset; CHAT_LAB=all runs every scenario of the lab.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launchChromium } from "../lib/browser.mjs";
import { startServer, bin } from "../lib/server.mjs";
import { startProxy } from "../lib/proxy.mjs";
import { startNginx } from "../lib/nginx.mjs";
import { SCENARIOS } from "../lab/harness.mjs";

const SUBSET = ["ws-refused", "ws-mute", "drops", "cut-long"];
const all = process.env.CHAT_LAB === "all";
const scenarios = SCENARIOS.filter((s) => all || SUBSET.includes(s.id));
const SEND_MS = Number(process.env.CHAT_LAB_SECONDS ?? 4) * 1000;
const WAIT = { timeout: 30000 };
let browser;

before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

// Open the chat and enter; the page load goes through the fault too, so it is tried again (up
// to 6 times) until ferry's client and the chat script are there.
async function enter(context, base, nick) {
  let page, errors, last;
  for (let i = 0; i < 6 && !page; i++) {
    // A fresh tab per try: a dropped load may leave the old one navigating on its own.
    const p = await context.newPage();
    errors = [];
    p.on("pageerror", (e) => errors.push(e));
    try {
      await p.goto(base + "/", { timeout: 15000 });
      if (await p.evaluate(() => typeof ferry === "object" && !!document.querySelector("#enter")))
        page = p;
    } catch (e) {
      last = e;
    }
    if (!page) await p.close();
  }
  if (!page) throw new Error(`the page did not load whole through the fault: ${last?.message}`);
  await page.fill("#nick", nick);
  await page.fill("#first-room", "lab");
  await page.click("#enter");
  await page.locator("#chat").waitFor({ state: "visible", ...WAIT });
  return { page, errors };
}

const lines = (page) => page.$$eval("#messages li:not(.system)", (lis) =>
  lis.map((li) => li.querySelector(".text").textContent));

for (const sc of scenarios) {
  test(`chat through "${sc.title}" (${sc.id}): nothing lost, duplicated or reordered`, async (t) => {
    const srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--static",
      "examples/chat", "--allow-publish", "message,typing", "--publish-rate", "0"]);
    // As the lab builds it: nginx in front of ferry, the proxy in front of both.
    let front = srv.url, ngx = null, proxy = null;
    if (sc.nginx) front = (ngx = await startNginx(sc.nginx, front)).url;
    if (sc.proxy) front = (proxy = await startProxy(front, sc.proxy)).url;
    const ctxA = await browser.newContext();
    const ctxB = await browser.newContext();
    try {
      const a = await enter(ctxA, front, "alice");
      const b = await enter(ctxB, srv.url, "bob");
      // Both type while the fault acts: "a1", "b1", "a2", ...
      const sent = { a: [], b: [] };
      const end = Date.now() + SEND_MS;
      for (let n = 1; Date.now() < end; n++) {
        for (const [who, p] of [["a", a.page], ["b", b.page]]) {
          const text = `${who}${n}`;
          await p.fill("#message", text);
          await p.press("#message", "Enter");
          sent[who].push(text);
        }
        await new Promise((r) => setTimeout(r, 400)); // the typing pace, not a wait for an event
      }
      const want = [...sent.a, ...sent.b].sort().join();
      for (const [name, p] of [["alice", a.page], ["bob", b.page]]) {
        await p.waitForFunction((w) => [...document.querySelectorAll("#messages li:not(.system) .text")]
          .map((x) => x.textContent).sort().join() === w, want, WAIT).catch(() => {});
        const got = await lines(p);
        assert.equal(got.length, new Set(got).size, `${name}: no duplicates (${got})`);
        assert.deepEqual([...got].sort(), want.split(","), `${name}: nothing lost`);
        for (const who of ["a", "b"])
          assert.deepEqual(got.filter((x) => x[0] === who), sent[who], `${name}: ${who}'s in order`);
      }
      await a.page.waitForFunction(() => ![...document.querySelectorAll("#messages .mine .tick")]
        .some((x) => x.textContent === "○"), null, WAIT);
      const transport = await a.page.textContent("#transport");
      const reason = await a.page.textContent("#reason");
      t.diagnostic(`${sc.id}: ${sent.a.length + sent.b.length} messages; alice on ${transport} ${reason} (lab's best: ${sc.best})`);
      assert.match(transport, /^(websocket|sse|polling|short-polling)$/);
      assert.deepEqual([...a.errors, ...b.errors], [], "no script errors");
    } finally {
      await ctxA.close();
      await ctxB.close();
      await proxy?.stop().catch(() => {});
      await ngx?.stop();
      assert.equal(await srv.stop(), 0);
    }
  });
}
