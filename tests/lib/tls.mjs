// A throw-away PKI for the TLS tests, made with the `openssl` command in a temporary folder:
// a CA, and certificates it signs (P-256 keys: fast to make).
//
//   const pki = makePki();
//   const { cert, key } = pki.issue("localhost", "DNS:localhost,IP:127.0.0.1");
//   ... { ca: pki.caPem } ...
//   pki.cleanup();
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";

export function makePki() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-tls-"));
  const run = (args) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  run(["req", "-x509", ...ec, "-days", "2", "-subj", "/CN=ferry test CA", "-keyout", "ca.key",
    "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
  const ca = path.join(dir, "ca.pem");
  return {
    dir,
    ca,
    caPem: fs.readFileSync(ca, "utf8"),
    // Issue (or re-issue, over the same files) a server certificate named file.pem/file.key.
    issue(cn, san, file = cn) {
      const ext = path.join(dir, `${file}.ext`);
      fs.writeFileSync(ext, `subjectAltName=${san}\nbasicConstraints=CA:FALSE\n` +
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n");
      run(["req", ...ec, "-subj", `/CN=${cn}`, "-keyout", `${file}.key`, "-out", `${file}.csr`]);
      run(["x509", "-req", "-in", `${file}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", `${file}.pem`, "-extfile", ext]);
      return { cert: path.join(dir, `${file}.pem`), key: path.join(dir, `${file}.key`) };
    },
    cleanup() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Connect with TLS and resolve with what the server presented: the certificate's CN and
// fingerprint, the protocol and the ALPN answer.
export function peek(port, { ca, servername, ALPNProtocols, timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, ca, servername, ALPNProtocols }, () => {
      const c = s.getPeerCertificate();
      const out = { cn: c.subject?.CN, fingerprint: c.fingerprint256, protocol: s.getProtocol(),
        alpn: s.alpnProtocol, authorized: s.authorized };
      s.end();
      clearTimeout(t);
      resolve(out);
    });
    const t = setTimeout(() => (s.destroy(), reject(new Error("TLS connect timeout"))), timeoutMs);
    s.on("error", (e) => (clearTimeout(t), reject(e)));
  });
}

// Run `openssl s_client` against port with extra args; resolves with its output (stdout and
// stderr together) once it has ended (stdin closes at once: connect, handshake, quit).
export function sClient(port, args = [], timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const p = spawn("openssl", ["s_client", "-connect", `127.0.0.1:${port}`, ...args],
      { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (out += d));
    const t = setTimeout(() => (p.kill(), reject(new Error(`s_client hung: ${out}`))), timeoutMs);
    p.on("exit", () => (clearTimeout(t), resolve(out)));
    p.stdin.end();
  });
}
