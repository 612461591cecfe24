// Two tabs of headless Chromium (fake microphone) join a call through partytracks:
// each pushes its microphone and pulls the other's, and each must receive the other's
// audio: RTP packets arriving and audio levels (RFC 6464) above silence. Then one tab
// stops pulling (partytracks closes the track, renegotiating) and the other keeps hearing.
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
    page.on("dialog", async (d) => { console.log(`  tab ${tab} dialog: ${d.message()}`); await d.dismiss(); });
    page.on("framenavigated", (f) => { if (f === page.mainFrame()) console.log(`  tab ${tab} navigated: ${f.url().split("?")[0]}`); });
    const query = new URLSearchParams({ hs: env("HS_URL"), room: env("ROOM_ID"), token });
    await page.goto(`${env("PAGE_URL")}?${query}`);
    await page.waitForFunction(() => typeof window.start === "function");
    tabs.push(page);
  }
  step("both tabs push their microphone");
  await Promise.all(tabs.map((p) => p.evaluate(() => window.start())));
  const pushed = await Promise.all(tabs.map((p, i) =>
    until(p, `tab ${i} pushed`, () => window.state.pushed)));
  step(`pushed: ${JSON.stringify(pushed)}`);
  await tabs[0].evaluate((m) => window.pull(m), pushed[1]);
  await tabs[1].evaluate((m) => window.pull(m), pushed[0]);
  await Promise.all(tabs.map((p, i) => until(p, `tab ${i} pulled`, () => window.state.pulled)));
  step("each tab pulled the other's track");
  for (const [i, page] of tabs.entries()) {
    const heard = await until(page, `tab ${i} hears the other`, async () => {
      const r = await window.inbound();
      return r.packets >= 100 && r.levels.some((l) => l > 0.01) ? r : null;
    });
    step(`tab ${i} received ${heard.packets} packets, audio levels ${JSON.stringify(heard.levels)}`);
  }
  step("tab 0 stops pulling: partytracks closes the track with a new offer");
  await tabs[0].evaluate(() => window.unpull());
  const closed = await until(tabs[0], "the close answered", () => window.closeSettled());
  if (closed.answer !== "answer" || closed.state !== "connected") {
    throw new Error(`after tracks/close: ${JSON.stringify(closed)}`);
  }
  const before = (await tabs[1].evaluate(() => window.inbound())).packets;
  await until(tabs[1], "tab 1 still hears tab 0", async (n) =>
    (await window.inbound()).packets >= n + 50, Boolean, { arg: before, timeout: 30000 });
  step("tab 0's pull closed; tab 1 keeps hearing tab 0");
  console.log("OK");
} catch (e) {
  console.log(`FAILED: ${e.stack || e}`);
  for (const [i, page] of (await browser.pages()).entries()) {
    const report = await page.evaluate(() => window.debug && window.debug()).catch((x) => String(x));
    console.log(`tab ${i} debug: ${JSON.stringify(report, null, 1)}`);
  }
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
