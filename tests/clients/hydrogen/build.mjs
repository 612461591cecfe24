// Builds the Hydrogen web app into OUT_DIR (argv[2]): index.html, app.js (main.js
// bundled with hydrogen-view-sdk by esbuild), the SDK's assets (theme CSS, fonts, icons,
// download sandbox, olm worker), its service worker and olm's wasm for end-to-end encryption.
import { build } from "esbuild";
import { cpSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "..", "node_modules");
const out = process.argv[2];
if (!out) throw new Error("usage: node hydrogen/build.mjs OUT_DIR");
mkdirSync(out, { recursive: true });

await build({
  entryPoints: [join(here, "main.js")],
  bundle: true,
  format: "esm",
  platform: "browser",
  outfile: join(out, "app.js"),
  // olm's emscripten loader mentions Node's modules on a branch a browser never takes.
  external: ["fs", "path", "crypto"],
  logLevel: "warning",
});
cpSync(join(here, "index.html"), join(out, "index.html"));
cpSync(join(modules, "hydrogen-view-sdk", "lib-build", "sw.js"), join(out, "sw.js"));
cpSync(join(modules, "hydrogen-view-sdk", "asset-build", "assets"), join(out, "assets"), { recursive: true });
mkdirSync(join(out, "olm"), { recursive: true });
for (const f of ["olm.js", "olm.wasm", "olm_legacy.js"]) {
  cpSync(join(modules, "@matrix-org", "olm", f), join(out, "olm", f));
}
console.log(`built Hydrogen into ${out}`);
