// Two tabs of headless Chromium through partytracks: tab 0 pushes its fake camera as
// simulcast (rids f and h, h at half size), tab 1 pulls it and decodes; asking the SFU
// for layer h (tracks/update with simulcast.preferredRid) makes tab 1 decode half-size
// frames, and asking for f again full-size ones: the switch happens in the SFU, at a
// keyframe of the target layer, without renegotiation.
//
// Env: PAGE_URL, HS_URL, ROOM_ID, TOKEN_A, TOKEN_B, CHROMIUM (default /usr/bin/chromium).
import { env, launch, step, until } from "./harness.mjs";

const browser = await launch();
let code = 0;
try {
  const tabs = [];
  for (const token of [env("TOKEN_A"), env("TOKEN_B")]) {
    const page = await browser.newPage();
    const tab = tabs.length;
    page.on("console", (m) => { if (m.type() === "error") console.log(`  tab ${tab} console: ${m.text()}`); });
    const query = new URLSearchParams({ hs: env("HS_URL"), room: env("ROOM_ID"), token });
    await page.goto(`${env("PAGE_URL")}?${query}`);
    await page.waitForFunction(() => typeof window.start === "function");
    tabs.push(page);
  }
  await tabs[0].evaluate(() => window.start());
  const pushed = await until(tabs[0], "camera pushed", () => window.state.pushed);
  step(`pushed ${JSON.stringify(pushed)}`);
  await tabs[1].evaluate((m) => window.pull(m), pushed);
  await until(tabs[1], "pulled", () => window.state.pulled);
  const first = await until(tabs[1], "video decodes", async () => {
    const v = await window.video();
    return v && v.frames >= 30 ? v : null;
  });
  step(`tab 1 decodes ${JSON.stringify(first)}; tab 0 sends ${JSON.stringify(await tabs[0].evaluate(() => window.sent()))}`);
  for (const [rid, width] of [["h", 320], ["f", 640]]) {
    const [status, body] = await tabs[1].evaluate((r) => window.prefer(r), rid);
    if (status !== 200) throw new Error(`tracks/update: ${status} ${JSON.stringify(body)}`);
    const now = await until(tabs[1], `layer ${rid} decodes at width ${width}`, async (w) => {
      const v = await window.video();
      return v && v.width === w ? v : null;
    }, Boolean, { arg: width });
    const more = await until(tabs[1], `layer ${rid} keeps decoding`, async (n) => {
      const v = await window.video();
      return v && v.frames >= n + 30 ? v : null;
    }, Boolean, { arg: now.frames });
    step(`layer ${rid}: ${JSON.stringify(more)}`);
  }
  console.log("OK");
} catch (e) {
  console.log(`FAILED: ${e.stack || e}`);
  for (const [i, page] of (await browser.pages()).entries()) {
    const report = await page.evaluate(() => window.debug && window.debug()).catch((x) => String(x));
    console.log(`tab ${i} debug: ${JSON.stringify(report, null, 1).slice(0, 4000)}`);
  }
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
