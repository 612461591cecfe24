// Bundles the pages (main.js: two tabs; conference.js: a group call; simulcast.js:
// simulcast video) with partytracks
// and rxjs into OUT_DIR (argv[2]) next to their HTML.
import { build } from "esbuild";
import { cpSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) throw new Error("usage: node partytracks/build.mjs OUT_DIR");
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: join(here, "main.js"), conference: join(here, "conference.js"),
    simulcast: join(here, "simulcast.js") },
  bundle: true, format: "esm", platform: "browser", outdir: out, logLevel: "warning",
});
for (const page of ["index.html", "conference.html", "simulcast.html"]) cpSync(join(here, page), join(out, page));
console.log(`built the partytracks page into ${out}`);
