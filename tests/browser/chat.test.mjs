// The chat demo (examples/chat) in headless Chromium, served by tools/ferry as `make run` does:
// the shared suite of chat-suite.mjs (two users across rooms, history, typing, ticks, unread, an
// outage; the README's screenshot), once more without connection-state recovery, then what only
// tools/ferry offers: an HTTP publish reaching
// both pages, each transport pinned, a server restart. ferry's own client
// (/ferry/ferry.min.js) comes from ferry itself.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launchChromium } from "../lib/browser.mjs";
import { startServer, bin } from "../lib/server.mjs";
import { chatSuite, PING_ARGS } from "./chat-suite.mjs";

chatSuite("tools/ferry", "chat", () => startServer(bin("tools/ferry/ferry"), ["--port", "0",
  "--static", "examples/chat", "--allow-publish", "message,typing", ...PING_ARGS]));
// Without connection-state recovery (or after its window): the page joins its rooms again and
// the relay's history fills the gap.
chatSuite("tools/ferry --recovery-ms 0", null, () => startServer(bin("tools/ferry/ferry"), ["--port",
  "0", "--static", "examples/chat", "--allow-publish", "message,typing", "--recovery-ms", "0",
  ...PING_ARGS]));

const TOKEN = "browser-test-token";
const WAIT = { timeout: 10000 };
let srv, browser;

before(async () => {
  srv = await startServer(bin("tools/ferry/ferry"), ["--host", "127.0.0.1", "--port", "0",
    "--static", "examples/chat", "--allow-publish", "message", "--publish-token", TOKEN]);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak, no sanitizer report)");
});

async function enter(nick, room, query = "", base = srv.url) {
  const context = await browser.newContext(); // own cookies and storage: a second user
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(base + "/" + query);
  assert.equal(await page.isVisible("#chat"), false, "the chat shows only after entering");
  await page.fill("#nick", nick);
  await page.fill("#first-room", room);
  await page.click("#enter");
  await page.locator("#chat").waitFor({ state: "visible", ...WAIT });
  assert.equal(await page.isVisible("#login"), false);
  return { page, context, errors };
}

const members = (page) =>
  page.$$eval("#members li", (lis) => lis.map((li) => li.textContent));

async function waitMembers(page, want) {
  await page.waitForFunction(
    (w) => [...document.querySelectorAll("#members li")].map((li) => li.textContent).join(",") === w,
    want.join(","), WAIT);
}

async function waitMessage(page, from, text) {
  await page.waitForFunction(
    ([f, t]) => [...document.querySelectorAll("#messages li")].some(
      (li) => li.querySelector(".from")?.textContent === f && li.querySelector(".text")?.textContent === t),
    [from, text], WAIT);
}

test("two pages exchange messages and see who is online", async () => {
  const a = await enter("alice", "lobby");
  assert.deepEqual(await members(a.page), ["alice"]);
  assert.equal(await a.page.textContent("#status"), "online");

  const b = await enter("bob", "lobby");
  await waitMembers(b.page, ["alice", "bob"]); // from the join answer
  await waitMembers(a.page, ["alice", "bob"]); // from the presence event

  await a.page.fill("#message", "hello from alice <b>not bold</b>");
  await a.page.click("#send");
  await waitMessage(b.page, "alice", "hello from alice <b>not bold</b>");
  await waitMessage(a.page, "alice", "hello from alice <b>not bold</b>"); // own, once acked
  assert.equal(await b.page.locator("#messages b").count(), 0, "text is never parsed as HTML");

  await b.page.fill("#message", "hi alice");
  await b.page.press("#message", "Enter");
  await waitMessage(a.page, "bob", "hi alice");

  // A backend publishes over HTTP: both pages show it.
  const res = await fetch(`${srv.url}/api/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ room: "lobby", event: "message", data: { text: "maintenance at 5" } }),
  });
  assert.equal(res.status, 200);
  for (const p of [a.page, b.page])
    await p.waitForFunction(() => [...document.querySelectorAll("#messages li.system")]
      .some((li) => li.textContent === "server: maintenance at 5"), null, WAIT);

  // Rooms are separate: bob in another room does not get alice's lobby messages there.
  await b.page.fill("#join-room", "games");
  await b.page.click("#join-form button");
  await b.page.waitForFunction(() => document.querySelector("#room-title").textContent === "# games",
    null, WAIT);
  await waitMembers(b.page, ["bob"]);

  // Bob closes his page: alice sees him leave.
  await b.context.close();
  await waitMembers(a.page, ["alice"]);

  assert.deepEqual(a.errors, [], "no script errors");
  assert.deepEqual(b.errors, [], "no script errors");
  await a.context.close();
});

test("one page on long-polling, the other on WebSocket, same room", async () => {
  const a = await enter("carol", "ops", "?transports=polling");
  const b = await enter("dave", "ops", "?transports=websocket");
  assert.equal(await a.page.textContent("#transport"), "polling");
  assert.equal(await b.page.textContent("#transport"), "websocket");
  // The badge says why (ferry's client's transport event): a reason code beside the name.
  for (const p of [a.page, b.page])
    await p.waitForFunction(() => /^\([a-z0-9-]+\)$/.test(document.querySelector("#reason").textContent), null, WAIT);
  await waitMembers(a.page, ["carol", "dave"]);
  await a.page.fill("#message", "over polling ✓");
  await a.page.click("#send");
  await waitMessage(b.page, "carol", "over polling ✓");
  await b.page.fill("#message", "over websocket ✓");
  await b.page.click("#send");
  await waitMessage(a.page, "dave", "over websocket ✓");
  assert.deepEqual([...a.errors, ...b.errors], [], "no script errors");
  await a.context.close();
  await b.context.close();
});

test("the server restarts: both pages reconnect, join their rooms again and go on chatting", async () => {
  const args = (port) => ["--port", String(port), "--static", "examples/chat", "--allow-publish",
    "message"];
  let s1 = await startServer(bin("tools/ferry/ferry"), args(0));
  const port = s1.port;
  const a = await enter("erin", "night", "", s1.url);
  const b = await enter("frank", "night", "", s1.url);
  await waitMembers(a.page, ["erin", "frank"]);
  assert.equal(await s1.stop(), 0);
  for (const p of [a.page, b.page])
    await p.waitForFunction(() => /^(offline|reconnecting)/.test(document.querySelector("#status").textContent),
      null, WAIT);
  // Same port again: socket.io-client's reconnection finds it.
  s1 = await startServer(bin("tools/ferry/ferry"), args(port));
  try {
    for (const p of [a.page, b.page])
      await p.waitForFunction(() => document.querySelector("#status").textContent.startsWith("online"),
        null, { timeout: 15000 });
    // Recovery is on, but a restarted server knows no session: the page says it resynced
    // (docs/client.md's reason is "expired"; a client that holds an offset hears "invalid").
    for (const p of [a.page, b.page])
      assert.match(await p.textContent("#status"), /^online \(resynced: (expired|invalid)\)$/);
    await waitMembers(a.page, ["erin", "frank"]);
    await waitMembers(b.page, ["erin", "frank"]);
    await a.page.fill("#message", "still here?");
    await a.page.click("#send");
    await waitMessage(b.page, "erin", "still here?");
    assert.deepEqual([...a.errors, ...b.errors], [], "no script errors");
    await a.context.close();
    await b.context.close();
  } finally {
    assert.equal(await s1.stop(), 0);
  }
});
