// ferry's browser client: `io` (a Socket.IO v5 client) and `WebSocket` (a WebSocket-compatible
// object), both on the Engine.IO client with ferry's transport ladder. docs/client.md.
import { Manager, Socket } from "./socket.mjs";
import { Engine } from "./engine.mjs";
import { WebSocket } from "./shim.mjs";
import { engineFor } from "./shared.mjs";

const cache = {};

export function io(uri, o) {
  if (typeof uri === "object") (o = uri), (uri = undefined);
  o = { ...o };
  const u = new URL(uri ?? "", globalThis.location?.href);
  const nsp = u.pathname || "/";
  if (u.search && !o.query) o.query = Object.fromEntries(u.searchParams);
  if (o.shareAcrossTabs) o.Engine = engineFor(o); // one connection for the origin's tabs
  const id = u.origin + (o.path || "/socket.io");
  const reuse = !o.forceNew && o.multiplex !== false && !(cache[id]?.nsps[nsp]);
  const m = reuse ? (cache[id] ||= new Manager(u.origin, o)) : new Manager(u.origin, o);
  return m.socket(nsp, o);
}

export { Manager, Socket, Engine, WebSocket };
export default io;
