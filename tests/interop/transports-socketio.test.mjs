// Socket.IO v5 over ferry's extension transports: the socket layer does not know which
// transport feeds it, so CONNECT, events with acknowledgements and binary attachments work
// over SSE and short-polling as over polling. Driven with tests/lib/ferry-ext-client.mjs and
// raw Socket.IO packets (PROTOCOL.md "Socket.IO v5").
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startSio } from "../lib/sio.mjs";
import { ExtClient } from "../lib/ferry-ext-client.mjs";
import { messages } from "../lib/client.mjs";

let srv;
before(async () => {
  srv = await startSio(["--transports", "polling,websocket,sse,short-polling"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

for (const transport of ["sse", "short-polling"]) {
  test(`${transport}: CONNECT, an event with an ack, and a binary event round trip`, async () => {
    const c = new ExtClient(`${srv.url}/socket.io/`, { transport });
    await c.open();
    const first = messages(c, 2);
    c.send("0"); // CONNECT to "/" (the engine message is "40")
    const [connect, auth] = await first;
    const m = /^0\{"sid":"([^"]+)"\}$/.exec(connect);
    assert.ok(m, connect);
    assert.equal(auth, '2["auth",{}]');
    const conn = await srv.next((e) => e.event === "connect" && e.id === m[1]);
    assert.equal(conn.sid, c.sid, "the engine session under the socket is ours");
    // An event asking for an ack: the server acks with the same arguments.
    const ack = messages(c, 1);
    c.send('21["message-with-ack","línea\\r\\nnueva",{"n":1}]');
    assert.deepEqual(await ack, ['31["línea\\r\\nnueva",{"n":1}]']);
    // A binary event: the placeholder packet, then its attachment; echoed as message-back.
    const back = messages(c, 2);
    c.send('51-["message",{"_placeholder":true,"num":0}]');
    c.send(Buffer.from([1, 2, 3, 13, 10, 0]));
    const [head, att] = await back;
    assert.equal(head, '51-["message-back",{"_placeholder":true,"num":0}]');
    assert.deepEqual([...att], [1, 2, 3, 13, 10, 0]);
    c.close();
    await srv.next((e) => e.event === "disconnect" && e.id === m[1]);
  });
}
