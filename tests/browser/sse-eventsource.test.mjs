// ferry's SSE transport with the browser's own EventSource (headless Chromium), written from
// docs/protocol.md: the page opens a session on transport=sse, POSTs text with CR/LF/NUL/emoji
// and binary, and gets every echo back exactly; the server recycles the stream every few
// kilobytes and EventSource's own reconnection (Last-Event-ID, retry from the prelude) loses
// and duplicates nothing.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { launchChromium } from "../lib/browser.mjs";
import { startEngine } from "../lib/events.mjs";

let eng, browser, dir;
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-es-"));
  fs.writeFileSync(path.join(dir, "index.html"), "<!doctype html><title>sse</title>");
  eng = await startEngine(["--transports", "polling,sse", "--static", dir, "--sse-recycle", "3000"]);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  assert.equal(await eng.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

test("EventSource: every message exactly, across recycled streams", async () => {
  const page = await (await browser.newContext()).newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(`${eng.url}/`);
  const sent = ["cr\rlf\ncrlf\r\nnul\0", "emoji 😀🚢", "", ...Array.from({ length: 80 }, (_, i) => `m${i} ${"p".repeat(60)}`)];
  const result = await page.evaluate(async ({ path, sent }) => {
    const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
    const decode = (d) => {
      if (d[0] === "b") return { binary: Array.from(b64(d.slice(1))) };
      const text = d[0] === "x" ? new TextDecoder().decode(b64(d.slice(1))) : d;
      return { type: Number(text[0]), data: text.slice(1) };
    };
    const got = [];
    let opens = 0;
    const es = new EventSource(`${path}?EIO=4&transport=sse`);
    const sid = await new Promise((resolve, reject) => {
      es.onopen = () => opens++;
      es.onerror = () => es.readyState === EventSource.CLOSED && reject(new Error("stream failed"));
      es.onmessage = (ev) => {
        const p = decode(ev.data);
        if (p.type === 0) resolve(JSON.parse(p.data).sid);
        else if (p.type === 4 || p.binary) got.push(p.binary ? p : p.data);
        else if (p.type === 2) fetch(`${path}?EIO=4&transport=sse&sid=${sid}`, { method: "POST", body: "3" });
      };
    });
    const post = (body) => fetch(`${path}?EIO=4&transport=sse&sid=${sid}`, { method: "POST", body });
    // One POST at a time, one message each, so that the echoes flow over several streams.
    for (const m of sent) if ((await post("4" + m)).status !== 200) throw new Error("POST failed");
    await post("bAAEC/w=="); // 00 01 02 ff
    const deadline = Date.now() + 15000;
    while (got.length < sent.length + 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    es.close();
    await post("1");
    return { got, opens, lastEventId: es.lastEventId };
  }, { path: eng.path, sent });
  assert.deepEqual(result.got.slice(0, sent.length), sent);
  assert.deepEqual(result.got[sent.length], { binary: [0, 1, 2, 255] });
  assert.equal(result.got.length, sent.length + 1, "nothing duplicated");
  assert.ok(result.opens >= 2, `EventSource reconnected after recycling (${result.opens} opens)`);
  assert.deepEqual(errors, []);
});
