// The chat (examples/chat) as two users see it, in headless Chromium, against any server that
// speaks tools/ferry's relay: tools/ferry itself (chat.test.mjs) and the C program
// examples/chat-server (chat-server.test.mjs) run this same suite.
//
// alice and bob, across two rooms: history on join, who is online, typing, messages, delivery
// ticks, unread counts, and a network outage on alice's side long enough for the server to drop
// her session, with messages sent on both sides meanwhile: after it, each page shows every
// message exactly once and in order. The last state is the screenshot of the example's README,
// checked first to show what it should. FERRY_SCREENSHOTS=1 (make screenshots) writes it to
// examples/<name>/screenshot.png; otherwise to the build folder.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { launchChromium } from "../lib/browser.mjs";
import { root, buildDir } from "../lib/server.mjs";

const WAIT = { timeout: 20000 };
// The servers run with short heartbeats so that a 6 s outage ends the session on the server
// (ping interval + timeout = 4 s): the page must then come back through a reconnect.
export const PING_ARGS = ["--ping-interval", "2000", "--ping-timeout", "2000"];
export const OUTAGE_MS = 6000;

// A TCP proxy that can go down: cut() destroys every connection and resets new ones until
// heal() (a Wi-Fi drop, a train tunnel).
async function startCutProxy(port) {
  const state = { down: false, sockets: new Set() };
  const server = net.createServer((c) => {
    if (state.down) return c.destroy();
    const up = net.connect(port, "127.0.0.1");
    state.sockets.add(c);
    c.pipe(up).pipe(c);
    const end = () => (c.destroy(), up.destroy(), state.sockets.delete(c));
    c.on("close", end);
    up.on("close", end);
    c.on("error", () => {});
    up.on("error", () => {});
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      state.down = true;
      for (const s of state.sockets) s.destroy();
    },
    heal() {
      state.down = false;
    },
    stop: () => new Promise((r) => (state.sockets.forEach((s) => s.destroy()), server.close(r))),
  };
}

// start() -> {url, stop(): exit code}; name: the example whose README shows the screenshot
// (null: none).
export function chatSuite(label, name, start) {
  let srv, browser, proxy;

  before(async () => {
    srv = await start();
    proxy = await startCutProxy(srv.port);
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await proxy?.stop();
    assert.equal(await srv.stop(), 0, `${label} exits 0 on SIGTERM (no leak, no sanitizer report)`);
  });

  async function enter(nick, room, base) {
    const context = await browser.newContext({ viewport: { width: 1100, height: 640 } });
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e));
    await page.goto(base + "/");
    await page.fill("#nick", nick);
    await page.fill("#first-room", room);
    await page.click("#enter");
    await page.locator("#chat").waitFor({ state: "visible", ...WAIT });
    return { page, context, errors };
  }

  const texts = (page) => page.$$eval("#messages li:not(.system)", (lis) =>
    lis.map((li) => `${li.querySelector(".from").textContent}: ${li.querySelector(".text").textContent}`));

  async function waitTexts(page, want, what) {
    try {
      await page.waitForFunction((w) => JSON.stringify([...document.querySelectorAll("#messages li:not(.system)")]
        .map((li) => `${li.querySelector(".from").textContent}: ${li.querySelector(".text").textContent}`)) === w,
      JSON.stringify(want), WAIT);
    } catch (e) {
      assert.deepEqual(await texts(page), want, what); // says what differs
      throw e;
    }
  }

  const waitText = (page, sel, want) => page.waitForFunction(([s, w]) =>
    (document.querySelector(s)?.textContent ?? "") === w, [sel, want], WAIT)
    .catch(async (e) => {
      assert.equal(await page.textContent(sel), want, sel);
      throw e;
    });

  async function send(page, text) {
    await page.fill("#message", text);
    await page.press("#message", "Enter");
  }

  async function open(page, room) {
    await page.click(`#rooms li[data-room="${room}"]`);
    await waitText(page, "#room-title", `# ${room}`);
  }

  const unread = (page, room) => page.$eval(`#rooms li[data-room="${room}"]`,
    (li) => li.querySelector(".unread")?.textContent ?? "");

  test(`${label}: two users across rooms: history, presence, typing, ticks, unread, an outage`, async (t) => {
    // alice is first in the lobby and talks to no one: that is history for bob.
    const a = await enter("alice", "lobby", proxy.url);
    await waitText(a.page, "#status", "online");
    await send(a.page, "anyone here?");
    await send(a.page, "I'll wait");
    await waitTexts(a.page, ["alice: anyone here?", "alice: I'll wait"]);
    await a.page.waitForFunction(() => [...document.querySelectorAll("#messages .mine .tick")]
      .map((t) => t.textContent).join() === "✓,✓", null, WAIT); // taken by the server, no one to deliver to

    const b = await enter("bob", "lobby", srv.url);
    await waitTexts(b.page, ["alice: anyone here?", "alice: I'll wait"], "history on join");
    assert.equal(await b.page.locator("#messages li.past").count(), 2, "shown as history");
    await waitText(b.page, "#online-count", "(2)");
    await waitText(a.page, "#online-count", "(2)");
    assert.deepEqual(await a.page.$$eval("#members li", (l) => l.map((x) => x.textContent)), ["alice", "bob"]);
    await a.page.waitForFunction(() => [...document.querySelectorAll("#messages li.system")]
      .some((li) => li.textContent === "bob joined"), null, WAIT);

    // Typing: bob types, alice sees it; his message ends it.
    await b.page.fill("#message", "hi ali");
    await b.page.type("#message", "ce");
    await waitText(a.page, "#typing", "bob is typing…");
    await b.page.press("#message", "Enter");
    await waitTexts(a.page, ["alice: anyone here?", "alice: I'll wait", "bob: hi alice"]);
    await waitText(a.page, "#typing", "");

    // Ticks: alice's next message is delivered to bob (✓✓, from bob's receipt).
    await send(a.page, "hello bob <b>not bold</b>");
    await waitTexts(b.page, ["alice: anyone here?", "alice: I'll wait", "bob: hi alice",
      "alice: hello bob <b>not bold</b>"]);
    assert.equal(await b.page.locator("#messages b").count(), 0, "text is never parsed as HTML");
    await a.page.waitForFunction(() => {
      const t = [...document.querySelectorAll("#messages .mine .tick")].at(-1);
      return t?.textContent === "✓✓" && t.title === "delivered to bob";
    }, null, WAIT);

    // A second room for both; unread counts while alice looks at the lobby.
    for (const p of [a.page, b.page]) {
      await p.fill("#join-room", "random");
      await p.click("#join-form button");
      await waitText(p, "#room-title", "# random");
    }
    await waitText(a.page, "#online-count", "(2)");
    await open(a.page, "lobby");
    await send(b.page, "in random 1");
    await send(b.page, "in random 2");
    await a.page.waitForFunction(() => document.querySelector('#rooms li[data-room="random"] .unread')
      ?.textContent === "2", null, WAIT);
    assert.equal(await unread(a.page, "lobby"), "", "the room on screen has no unread");
    assert.match(await a.page.title(), /^\(2\) ferry chat$/);
    await open(a.page, "random");
    assert.equal(await unread(a.page, "random"), "", "read once opened");
    await waitTexts(a.page, ["bob: in random 1", "bob: in random 2"]);
    await open(a.page, "lobby");

    // The outage: alice's network goes away for longer than the server waits for her.
    await a.page.evaluate(() => {
      window.drops = 0;
      window.trace = [];
      const t0 = Date.now();
      const note = (...x) => window.trace.push(`${Date.now() - t0} ${x.join(" ")}`);
      window.chatSocket.on("disconnect", (r) => (window.drops++, note("disconnect", r)));
      window.chatSocket.on("connect", () => note("connect recovered", window.chatSocket.recovered));
      window.chatSocket.on("transport", (e) => note("transport", e.from, e.to, e.reason));
      window.chatSocket.onAny((ev, ...a) => note("event", ev, JSON.stringify(a).slice(0, 120)));
    });
    await open(b.page, "lobby");
    proxy.cut();
    await send(b.page, "alice, are you there?");
    await open(b.page, "random");
    await send(b.page, "random while away");
    await send(a.page, "typed offline");
    await a.page.waitForFunction(() => [...document.querySelectorAll("#messages .mine .tick")].at(-1)
      ?.textContent === "○", null, WAIT); // waiting in the outbox
    await new Promise((r) => setTimeout(r, OUTAGE_MS)); // the outage itself lasts this long
    proxy.heal();
    await a.page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("online"),
      null, { timeout: 30000 });

    const lobby = ["alice: anyone here?", "alice: I'll wait", "bob: hi alice",
      "alice: hello bob <b>not bold</b>", "bob: alice, are you there?", "alice: typed offline"];
    await waitTexts(a.page, lobby, "alice's lobby after the outage: all, once, in order")
      .catch(async (e) => {
        console.log((await a.page.evaluate(() => window.trace)).join("\n"));
        throw e;
      });
    assert.ok(await a.page.evaluate(() => window.drops) >= 1, "the session was lost: a real reconnect");
    t.diagnostic(`after the outage: ${await a.page.textContent("#status")}`); // "(recovered)" or not
    await a.page.waitForFunction(() => document.querySelector('#rooms li[data-room="random"] .unread')
      ?.textContent === "1", null, WAIT); // what she missed in the other room is unread
    await open(b.page, "lobby");
    await waitTexts(b.page, lobby, "bob's lobby: alice's offline message arrived once");
    await a.page.waitForFunction(() => [...document.querySelectorAll("#messages .mine .tick")].at(-1)
      ?.textContent === "✓✓", null, WAIT);
    await open(a.page, "random");
    await waitTexts(a.page, ["bob: in random 1", "bob: in random 2", "bob: random while away"]);
    await open(a.page, "lobby");

    // The README's screenshot: alice in the lobby, bob typing, one unread in random.
    await b.page.click(`#rooms li[data-room="random"]`);
    await send(b.page, "see you in the lobby");
    await open(b.page, "lobby");
    await a.page.waitForFunction(() => document.querySelector('#rooms li[data-room="random"] .unread')
      ?.textContent === "1", null, WAIT);
    await b.page.fill("#message", "one more thin");
    await b.page.type("#message", "g");
    await waitText(a.page, "#typing", "bob is typing…");
    await a.page.waitForFunction(() => /^\([a-z-]+\)$/.test(document.querySelector("#reason").textContent),
      null, WAIT);
    const shot = await a.page.screenshot();
    // What the screenshot shows, read from the page right after it was taken.
    const seen = await a.page.evaluate(() => ({
      title: document.querySelector("#room-title").textContent,
      status: document.querySelector("#status").textContent,
      members: [...document.querySelectorAll("#members li")].map((li) => li.textContent),
      online: document.querySelector("#online-count").textContent,
      unread: document.querySelector('#rooms li[data-room="random"] .unread')?.textContent,
      transport: document.querySelector("#transport").textContent,
      ticks: [...document.querySelectorAll("#messages .mine .tick")].map((t) => t.textContent),
      count: document.querySelectorAll("#messages li:not(.system)").length,
    }));
    assert.equal(seen.title, "# lobby");
    assert.match(seen.status, /^online/);
    assert.deepEqual(seen.members, ["alice", "bob"]);
    assert.equal(seen.online, "(2)");
    assert.equal(seen.unread, "1");
    assert.match(seen.transport, /^(websocket|sse|polling|short-polling)$/);
    assert.deepEqual(seen.ticks, ["✓✓", "✓✓", "✓✓", "✓✓"], "bob's receipts reached every message of alice");
    assert.equal(seen.count, 6);
    assert.ok(shot.length > 20000, `a real picture (${shot.length} bytes)`);
    const out = name === null ? null : process.env.FERRY_SCREENSHOTS === "1"
      ? path.join(root, "examples", name, "screenshot.png")
      : path.join(buildDir, "screenshots", `${name}.png`);
    if (out !== null) {
      fs.mkdirSync(path.dirname(out), { recursive: true });
      fs.writeFileSync(out, shot);
    }

    assert.deepEqual([...a.errors, ...b.errors], [], "no script errors");
    await a.context.close();
    await b.context.close();
  });
}
