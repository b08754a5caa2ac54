// The Node side of make bench: socket.io 4.8 (npm, pinned in package-lock.json) doing what the
// two tools/ferry servers that make bench starts do, so that ferry-bench drives both alike:
//   - like `ferry --suite`: "message" ...args is answered by "message-back" ...args (echo);
//   - like ferry's relay (`ferry --allow-publish '*' --publish-rate 0 --no-presence`):
//     "join" {room} joins and acks {ok, room, count}; "publish" {room, event, data} sends
//     event (data, {room, from: {id, name}}) to everyone else in the room and acks {ok: true}.
// Differences, none of them on a measured path: ferry --suite also emits "auth" on connect,
// and ferry's join answer lists up to 256 members (ferry-bench joins once per session, before
// the clock starts). Engine.IO settings are both servers' defaults (pingInterval 25000,
// pingTimeout 20000, maxPayload 1e6, no permessage-deflate). Transports: polling, websocket.
// Usage: node node-server.mjs [--port N]; prints "listening on http://127.0.0.1:PORT".
import { createServer } from "node:http";
import { Server } from "socket.io";

const i = process.argv.indexOf("--port");
const port = i > 0 ? Number(process.argv[i + 1]) : 0;
const http = createServer();
const io = new Server(http, {
  transports: ["polling", "websocket"],
  pingInterval: 25000,
  pingTimeout: 20000,
  maxHttpBufferSize: 1e6,
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
});

io.on("connection", (socket) => {
  const name = typeof socket.handshake.auth?.name === "string" ? socket.handshake.auth.name : "anonymous";
  socket.on("message", (...args) => socket.emit("message-back", ...args));
  socket.on("join", (arg, ack) => {
    const room = arg?.room;
    if (typeof room !== "string") return typeof ack === "function" && ack({ ok: false, error: "'room' must be a string" });
    socket.join(room);
    if (typeof ack === "function") ack({ ok: true, room, count: io.sockets.adapter.rooms.get(room)?.size ?? 0 });
  });
  socket.on("publish", (arg, ack) => {
    const { room, event, data } = arg ?? {};
    if (typeof room !== "string" || typeof event !== "string" || !socket.rooms.has(room)) {
      if (typeof ack === "function") ack({ ok: false, error: "bad publish" });
      return;
    }
    socket.to(room).emit(event, data ?? null, { room, from: { id: socket.id, name } });
    if (typeof ack === "function") ack({ ok: true });
  });
});

http.listen(port, "127.0.0.1", () => {
  console.log(`node socket.io: listening on http://127.0.0.1:${http.address().port} (Socket.IO path /socket.io/)`);
});
const stop = () => io.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
