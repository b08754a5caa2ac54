// Start tests/servers/ferry-test-handshake and await the JSON lines it prints
// ({event:"connect"|"admission"|"admission-answer", ...}).
//
//   const srv = await startHandshakeServer(["--admission", "1"]);
//   const adm = await srv.next((e) => e.event === "admission" && e.token === "t");
//   assert.equal(await srv.stop(), 0);
import { startServer, bin } from "./server.mjs";
import { EventLog } from "./events.mjs";

export async function startHandshakeServer(args = []) {
  const srv = await startServer(bin("tests/servers/ferry-test-handshake"), ["--port", "0", ...args]);
  srv.events = new EventLog(srv.proc.stdout, srv.stdout());
  srv.next = srv.events.next.bind(srv.events);
  return srv;
}
