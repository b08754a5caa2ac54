// Helpers for tests that drive an official client (engine.io-client, socket.io-client).

// Collect n "message" events of socket, in order; rejects after ms.
export function messages(socket, n, ms = 5000) {
  return new Promise((resolve, reject) => {
    const got = [];
    const t = setTimeout(() => reject(new Error(`got ${got.length} of ${n} messages`)), ms);
    socket.on("message", function onMsg(m) {
      got.push(m);
      if (got.length === n) {
        clearTimeout(t);
        socket.off("message", onMsg);
        resolve(got);
      }
    });
  });
}

// The bytes of a binary message (ArrayBuffer, typed array or Buffer) as an array of numbers.
export const bytes = (m) =>
  [...new Uint8Array(m.buffer ? m.buffer.slice(m.byteOffset, m.byteOffset + m.byteLength) : m)];
