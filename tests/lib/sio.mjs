// Start tests/servers/ferry-test-sio and await the JSON lines it prints
// ({event:"connect"|"event"|"server-ack"|"disconnect"|"refused", nsp, id, ...}).
//
//   const srv = await startSio();
//   const c = await srv.next((e) => e.event === "connect" && e.id === socket.id);
//   assert.equal(await srv.stop(), 0);
import { startServer, bin } from "./server.mjs";
import { EventLog } from "./events.mjs";

export async function startSio(args = [], opts = {}) {
  const srv = await startServer(bin("tests/servers/ferry-test-sio"), ["--port", "0", ...args], opts);
  srv.events = new EventLog(srv.proc.stdout, srv.stdout());
  srv.next = srv.events.next.bind(srv.events);
  srv.all = srv.events.all.bind(srv.events);
  srv.disconnectOf = (id, ms) => srv.next((e) => e.event === "disconnect" && e.id === id, ms);
  return srv;
}

// Does the server offer WebSocket? (transports/websocket.c may not have landed yet.)
export async function offersWebSocket(url) {
  const res = await fetch(`${url}/socket.io/?EIO=4&transport=polling`);
  const text = await res.text();
  try {
    return JSON.parse(text.slice(1)).upgrades.includes("websocket");
  } catch {
    return false;
  }
}

export const WS_ABSENT = "transports/websocket.c has not landed: the server offers no WebSocket";

// The transport modes of the interop matrix: socket.io-client options for each.
export const MODES = {
  polling: { transports: ["polling"] },
  websocket: { transports: ["websocket"] },
  upgrade: { transports: ["polling", "websocket"], upgrade: true },
};
