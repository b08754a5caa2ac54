// A TCP proxy whose WebSocket connections can be muted while they run (test code decides when):
// bytes of every connection pass both ways; once `mute` is set, connections that upgraded to
// WebSocket forward nothing more in either direction (a proxy or NAT that silently stalls an
// established WebSocket). Plain HTTP keeps passing. Used by the client-js tests for "WebSocket
// accepted, then mute" (tools/ferry-proxy's --websocket mute acts from the 101 on).
import net from "node:net";

export async function startToggleProxy(port) {
  const state = { mute: false, sockets: new Set(), wsCount: 0 };
  const server = net.createServer((c) => {
    const up = net.connect(port, "127.0.0.1");
    let ws = false;
    state.sockets.add(c);
    c.on("data", (d) => {
      if (!ws && /^GET [^\r\n]*\r\n[\s\S]*upgrade: websocket/i.test(d.toString("latin1"))) (ws = true), state.wsCount++;
      if (!(ws && state.mute)) up.write(d);
    });
    up.on("data", (d) => ws && state.mute || c.write(d));
    const end = () => (c.destroy(), up.destroy(), state.sockets.delete(c));
    c.on("close", end);
    up.on("close", end);
    c.on("error", () => {});
    up.on("error", () => {});
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const p = server.address().port;
  return {
    url: `http://127.0.0.1:${p}`,
    state,
    stop: () => new Promise((r) => (state.sockets.forEach((s) => s.destroy()), server.close(r))),
  };
}
