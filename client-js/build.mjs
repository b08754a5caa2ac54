// Bundles client-js for browsers: `node client-js/build.mjs <outdir>` writes <outdir>/ferry.mjs
// (a minified ES module exporting io and WebSocket) and <outdir>/ferry.min.js (a classic script
// defining window.ferry), and <outdir>/ferry-shared.js (the hub of shareAcrossTabs: the worker
// script the others start, served beside them), with esbuild from node_modules.
import { build } from "esbuild";
import path from "node:path";

const out = process.argv[2];
if (!out) {
  process.stderr.write("usage: node client-js/build.mjs <outdir>\n");
  process.exit(2);
}
const entry = path.join(import.meta.dirname, "src/index.mjs");
const common = { entryPoints: [entry], bundle: true, minify: true, target: "es2020", legalComments: "none", logLevel: "warning" };
await build({ ...common, format: "esm", outfile: path.join(out, "ferry.mjs") });
await build({ ...common, format: "iife", globalName: "ferry", outfile: path.join(out, "ferry.min.js"), define: { "import.meta.url": "undefined" } });
await build({ ...common, entryPoints: [path.join(import.meta.dirname, "src/shared-hub.mjs")], format: "iife", outfile: path.join(out, "ferry-shared.js"), define: { "import.meta.url": "undefined" } });
