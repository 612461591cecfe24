// Drives the Hydrogen web app in headless Chromium (puppeteer-core, Debian's chromium)
// as a person would: given nothing but the homeserver's URL it logs in, finds the
// invite in its room list, accepts it, reads the message waiting there and one that
// arrives live, and replies through the composer. The other side (alice) is driven by
// the Python test over the HTTP API; CONTROL_URL/send asks it to send the live
// message, CONTROL_URL/messages lists the bodies it sees in the room.
//
// Env: APP_URL, HS_URL, USERNAME, PASSWORD, ROOM_NAME, FIRST_MESSAGE, CONTROL_URL,
// REPLY, SCREENSHOT (written on failure), CHROMIUM (default /usr/bin/chromium).
import puppeteer from "puppeteer-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const [APP_URL, HS_URL, USERNAME, PASSWORD, ROOM_NAME, FIRST_MESSAGE, CONTROL_URL, REPLY, SCREENSHOT] = [
  "APP_URL", "HS_URL", "USERNAME", "PASSWORD", "ROOM_NAME", "FIRST_MESSAGE", "CONTROL_URL", "REPLY", "SCREENSHOT",
].map(env);

const startedAt = Date.now();
let currentStep = "start";
function step(description) {
  currentStep = description;
  console.log(`[${((Date.now() - startedAt) / 1000).toFixed(1)}s] ${description}`);
}

const httpErrors = [];
const consoleErrors = [];

/** Waits for an element whose text contains `text` under `selector`. */
async function waitForText(page, selector, text, timeout = 30000) {
  await page.waitForFunction(
    (sel, txt) => [...document.querySelectorAll(sel)].some((el) => el.textContent.includes(txt)),
    { timeout, polling: 200 }, selector, text);
}

async function main(page) {
  page.on("response", (res) => {
    if (res.status() >= 400 && res.url().startsWith(HS_URL)) {
      const line = `${res.request().method()} ${new URL(res.url()).pathname} -> ${res.status()}`;
      httpErrors.push(line);
      console.log(`  http: ${line}`);
    }
  });
  page.on("requestfailed", (req) => httpErrors.push(`${req.method()} ${req.url()} failed: ${req.failure()?.errorText}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") consoleErrors.push(msg.text());
  });
  page.on("pageerror", (err) => consoleErrors.push(`page error: ${err.message}`));

  step("open the app; the login screen asks for a homeserver");
  await page.goto(APP_URL, { waitUntil: "load" });
  const started = await page.waitForFunction(
    () => window.__hydrogenStarted || window.__hydrogenStartError, { timeout: 30000 });
  const startError = await page.evaluate(() => window.__hydrogenStartError);
  if (startError) throw new Error(`Hydrogen did not start: ${startError}`);
  await started.dispose();
  await page.waitForSelector("#homeserver", { visible: true, timeout: 30000 });

  step(`enter the server's URL (${HS_URL}) and let Hydrogen query its login flows`);
  await page.click("#homeserver", { clickCount: 3 });
  await page.keyboard.press("Backspace");
  await page.type("#homeserver", HS_URL);
  await page.keyboard.press("Tab"); // the change event makes Hydrogen query the server
  await page.waitForFunction(
    () => document.querySelector("#username") || document.querySelector(".LoginView_sso .error"),
    { timeout: 30000, polling: 200 });
  const loginError = await page.$eval(".LoginView_sso", (el) => el.querySelector(".error")?.textContent ?? "");
  if (loginError) throw new Error(`Hydrogen could not use the homeserver: ${loginError}`);

  step(`log in as ${USERNAME} with a password`);
  await page.type("#username", USERNAME);
  await page.type("#password", PASSWORD);
  await page.click(".PasswordLoginView button[type=submit]");
  // Either the session view appears, or the login form or the session loader shows an
  // error (the loader then offers "Export logs" and "Log out" buttons).
  const outcome = await page.waitForFunction(() => {
    if (document.querySelector(".SessionView")) return "ok";
    const formError = document.querySelector(".PasswordLoginView .error");
    if (formError && formError.textContent) return `login failed: ${formError.textContent}`;
    const loader = document.querySelector(".SessionLoadStatusView");
    if (loader && loader.querySelector("button")) return `session load failed: ${loader.textContent}`;
    return null;
  }, { timeout: 60000, polling: 200 });
  const result = await outcome.jsonValue();
  if (result !== "ok") throw new Error(result);

  step(`the room list shows the invite to "${ROOM_NAME}"; open it`);
  await waitForText(page, ".RoomList li .name", ROOM_NAME, 60000);
  const tiles = await page.$$(".RoomList li");
  let opened = false;
  for (const tile of tiles) {
    if ((await tile.evaluate((el) => el.textContent)).includes(ROOM_NAME)) {
      await tile.$eval("a", (a) => a.click());
      opened = true;
      break;
    }
  }
  if (!opened) throw new Error("the invite's tile disappeared");

  step("accept the invite");
  await page.waitForSelector(".InviteView", { visible: true, timeout: 30000 });
  await page.$eval(".InviteView_buttonRow button:not(.destructive)", (b) => b.click());

  step("the room opens and shows the message sent before the join");
  await page.waitForSelector(".RoomView .MessageComposer_input textarea", { visible: true, timeout: 60000 });
  await waitForText(page, ".Timeline_messageBody", FIRST_MESSAGE, 30000);

  step("a message sent now arrives live");
  const res = await fetch(`${CONTROL_URL}/send`, { method: "POST" });
  if (!res.ok) throw new Error(`control endpoint answered ${res.status}: ${await res.text()}`);
  const { body: liveMessage } = await res.json();
  await waitForText(page, ".Timeline_messageBody", liveMessage, 30000);

  step("reply through the composer");
  await page.type(".MessageComposer_input textarea", REPLY);
  await page.keyboard.press("Enter");
  await waitForText(page, ".Timeline_messageBody", REPLY, 30000);
  // Hydrogen shows a local echo at once; the reply counts once the other side reads it.
  const deadline = Date.now() + 30000;
  for (;;) {
    const seen = await (await fetch(`${CONTROL_URL}/messages`)).json();
    if (seen.includes(REPLY)) break;
    if (Date.now() > deadline) throw new Error(`the other side never received the reply; it sees ${JSON.stringify(seen)}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const page = await browser.newPage();
await page.setViewport({ width: 1200, height: 800 });
let code = 0;
try {
  await main(page);
  step("hydrogen: done");
} catch (err) {
  code = 1;
  console.error(`hydrogen: FAILED during step "${currentStep}":\n${err.stack || err}`);
  try {
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.error(`screenshot: ${SCREENSHOT}`);
  } catch (shotErr) {
    console.error(`no screenshot: ${shotErr}`);
  }
}
if (httpErrors.length) console.log(`non-2xx answers seen by Hydrogen:\n  ${[...new Set(httpErrors)].join("\n  ")}`);
if (consoleErrors.length) console.log(`console errors:\n  ${consoleErrors.slice(0, 20).join("\n  ")}`);
await browser.close();
process.exit(code);
