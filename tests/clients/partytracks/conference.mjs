// A group call of three tabs of headless Chromium (fake microphones) on partytracks:
//  1. tabs 0 and 1 join and pull each other;
//  2. tab 2 joins late and pulls both at once (one tracks/new with two tracks: our
//     offer adds two m-lines), and tabs 0 and 1 each pull tab 2 (a second pull on a
//     connected session: our re-offer keeps what the browser negotiated);
//  3. every tab hears every other: RTP arrives *and decodes to sound* (inbound-rtp
//     totalAudioEnergy, few concealed samples, WebAudio RMS of the decoded track);
//  4. the SFU sees tab 2 speak, mute (its track disabled) and unmute (GET …/call);
//  5. tab 1 closes: the SFU drops its session (GET …/call), tabs 0 and 2 keep hearing
//     each other;
//  6. tab 0 closes its pull of tab 1 and pushes a second track, which tab 2 hears;
//     then tab 0 pulls a second track of tab 2 (our offer after the recycling).
//
// Env: PAGE_URL (conference.html), HS_URL, ROOM_ID, TOKENS (three, comma-separated),
// TURN_URI (the one the server hands out), CHROMIUM (default /usr/bin/chromium).
// Prints what each check saw and OK last.
import { env as need, launch, step as log, until } from "./harness.mjs";

const tokens = need("TOKENS").split(",");

// Heard: packets arrived, the decoder produced energy with little concealment, and
// WebAudio saw the beep (silence is RMS 0; the fake beep is ~0.1).
const heard = (h) => h && h.packets >= 50 && h.energy > 0 && h.concealed < 0.5
  && h.peakRms > 0.01;

async function hears(tab, index, names) {
  const seen = await until(tab, `tab ${index} hears ${names}`, () => window.hearing(),
    (v) => names.every((n) => heard(v.pulls[n])));
  log(`tab ${index} hears`, seen.pulls);
  return seen;
}

// GET …/call (ours): who is in the call, their tracks with speaking and muted.
async function call() {
  const response = await fetch(`${need("HS_URL")}/_matrix/client/unstable/org.roomserver.sfu/` +
    `rooms/${encodeURIComponent(need("ROOM_ID"))}/call`,
  { headers: { Authorization: `Bearer ${tokens[0]}` } });
  return response.json();
}

async function untilCall(what, check, ms = 30000) {
  const end = Date.now() + ms;
  for (;;) {
    const state = await call();
    if (check(state)) return state;
    if (Date.now() > end) throw new Error(`timed out: ${what}; last ${JSON.stringify(state)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const browser = await launch();
let code = 0;
const tabs = [];
const pushed = [];
try {
  const join = async (i) => {
    const tab = await browser.newPage();
    tab.on("console", (m) => { if (m.type() === "error") console.log(`  tab ${i}: ${m.text()}`); });
    const query = new URLSearchParams({ hs: need("HS_URL"), room: need("ROOM_ID"), token: tokens[i] });
    await tab.goto(`${need("PAGE_URL")}?${query}`);
    await tab.waitForFunction(() => typeof window.join === "function");
    await tab.evaluate(() => window.join());
    pushed[i] = await until(tab, `tab ${i} pushed`, () => window.state.pushed, Boolean);
    tabs[i] = tab;
  };
  const pull = (i, j) => tabs[i].evaluate((name, m) => window.pull(name, m), `tab${j}`, pushed[j]);

  await Promise.all([join(0), join(1)]);
  // partytracks fetches generate-ice-servers without its headers (so gets none from
  // us); the page fetched them with the token and gave them to partytracks
  const turn = (await tabs[0].evaluate(() => window.hearing())).turn;
  log("partytracks' peer connection has TURN servers with credentials", turn);
  if (!turn.includes(need("TURN_URI"))) throw new Error(`no ${need("TURN_URI")} in ${turn}`);
  await pull(0, 1);
  await pull(1, 0);
  await hears(tabs[0], 0, ["tab1"]);
  await hears(tabs[1], 1, ["tab0"]);

  await join(2);
  // both pulls in one turn: partytracks batches them into a single tracks/new
  await tabs[2].evaluate((a, b) => { window.pull("tab0", a); window.pull("tab1", b); },
    pushed[0], pushed[1]);
  await pull(0, 2);
  await pull(1, 2);
  const batched = await tabs[2].evaluate(() => window.pulledInOneRequest());
  log("tab 2's pulls went in one tracks/new", { tracks: batched });
  if (batched !== 2) throw new Error(`tab 2's two pulls took ${batched} track(s) per request`);
  await hears(tabs[2], 2, ["tab0", "tab1"]);
  await hears(tabs[0], 0, ["tab1", "tab2"]);
  await hears(tabs[1], 1, ["tab0", "tab2"]);

  // speaking and muted as the SFU tells them from the browser's RFC 6464 levels
  const trackOf = (state, i) => state.participants.flatMap((p) => p.tracks)
    .find((t) => t.trackName === pushed[i].trackName);
  await untilCall("tab 2 speaking (the fake microphone beeps)",
    (state) => trackOf(state, 2)?.speaking === true);
  await tabs[2].evaluate(() => window.setMicrophone(false));
  await untilCall("tab 2 muted", (state) => trackOf(state, 2)?.muted === true);
  await tabs[2].evaluate(() => window.setMicrophone(true));
  const unmuted = await untilCall("tab 2 unmuted",
    (state) => trackOf(state, 2)?.muted === false);
  log("the SFU saw tab 2 speak, mute and unmute", trackOf(unmuted, 2));

  log("tab 1 closes");
  await tabs[1].close();
  await untilCall("the SFU drops tab 1's session", (state) => state.participants.length === 2);
  log("the call has 2 participants");
  for (const [i, other] of [[0, "tab2"], [2, "tab0"]]) {
    const before = (await tabs[i].evaluate(() => window.hearing())).pulls[other].packets;
    await until(tabs[i], `tab ${i} still hears ${other}`, () => window.hearing(),
      (v) => v.connection === "connected" && v.pulls[other].packets >= before + 50);
  }
  log("tabs 0 and 2 still hear each other");

  // tab 0 stops pulling tab 1's (gone) track and pushes a second microphone: Chromium
  // recycles the stopped transceiver's m-line for the new one in its offer
  await tabs[0].evaluate(() => window.unpull("tab1"));
  await until(tabs[0], "tab 0's close settled", () => window.closeSettled(), Boolean);
  await tabs[0].evaluate(() => window.push("second"));
  const second = await until(tabs[0], "tab 0 pushed a second track",
    () => window.state.second, Boolean);
  await tabs[2].evaluate((m) => window.pull("tab0-second", m), second);
  await hears(tabs[2], 2, ["tab0", "tab0-second"]);
  // and our next offer to tab 0 (a new pull) builds on the recycled m-line
  await tabs[2].evaluate(() => window.push("second"));
  const second2 = await until(tabs[2], "tab 2 pushed a second track",
    () => window.state.second, Boolean);
  await tabs[0].evaluate((m) => window.pull("tab2-second", m), second2);
  await hears(tabs[0], 0, ["tab2", "tab2-second"]);
  console.log("OK");
} catch (e) {
  console.log(`FAILED: ${e.stack || e}`);
  for (const [i, tab] of tabs.entries()) {
    if (!tab || tab.isClosed()) continue;
    const report = await tab.evaluate(async () => ({
      hearing: await window.hearing(), history: window.apiHistory(),
    })).catch((x) => String(x));
    console.log(`tab ${i}: ${JSON.stringify(report)}`);
  }
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
