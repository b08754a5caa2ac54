// Reference echo server for developing the conformance client: the npm `ws` package echoing every
// text and binary message back unchanged on ws://127.0.0.1:PORT/. Same command line and
// "listening on" line as ferry's examples/ws-echo, so run.mjs can start either one.
//   node tests/conformance/reference-echo.mjs --port 0 [--deflate]
import { WebSocketServer } from "ws";

const args = process.argv.slice(2);
const num = (name, dflt) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const port = num("--port", 0);
const deflate = args.includes("--deflate");
// The limits flags of ferry's ws-echo, mapped onto ws's options.
const threshold = num("--deflate-threshold", 0);
const maxMessage = num("--max-message", 64 * 1024 * 1024);
const maxFragments = num("--max-fragments", 1 << 20);

const wss = new WebSocketServer({
  host: "127.0.0.1",
  port,
  // 64 MiB: above the 16 MiB messages of group 9, below the decompression-bomb case.
  maxPayload: maxMessage,
  // ws limits a message to 16384 fragments by default; group 9 sends 65,536.
  maxFragments,
  perMessageDeflate: deflate ? { threshold } : false,
});

wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on("error", () => {}); // a protocol error closes the socket; nothing else to do
});

wss.on("listening", () => {
  console.log(`reference-echo (ws ${deflate ? "with" : "without"} permessage-deflate) listening on http://127.0.0.1:${wss.address().port}/`);
});

process.on("SIGTERM", () => {
  for (const c of wss.clients) c.terminate();
  wss.close(() => process.exit(0));
});
