// Bundles main.js with partytracks and rxjs into OUT_DIR (argv[2]) next to index.html.
import { build } from "esbuild";
import { cpSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) throw new Error("usage: node partytracks/build.mjs OUT_DIR");
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(here, "main.js")], bundle: true, format: "esm", platform: "browser",
  outfile: join(out, "app.js"), logLevel: "warning",
});
cpSync(join(here, "index.html"), join(out, "index.html"));
console.log(`built the partytracks page into ${out}`);
