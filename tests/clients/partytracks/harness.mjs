// What the partytracks drivers share: their environment, a timed log, headless
// Chromium with fake media devices, and polling a page's state.
import puppeteer from "puppeteer-core";

export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const startedAt = Date.now();
export const step = (what, data) => console.log(
  `[${((Date.now() - startedAt) / 1000).toFixed(1)}s] ${what}${data ? " " + JSON.stringify(data) : ""}`);

// Chromium with a fake microphone (a beep) and camera, no permission prompts.
export function launch() {
  return puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
      "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
      "--autoplay-policy=no-user-gesture-required"],
  });
}

// Poll the page until `check(value)` holds for what `probe(arg)` returns there (probe
// runs in the page); page errors (window.state.errors: partytracks' observables
// failing) end the wait at once.
export async function until(page, what, probe, check = Boolean,
  { arg, timeout = 40000, every = 250 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    const [value, errors] = await page.evaluate(
      async (src, a) => [await eval(src)(a), window.state.errors], probe.toString(), arg);
    if (errors.length) throw new Error(`${what}: page errors: ${errors.join("\n")}`);
    last = value;
    if (check(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}; last seen ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
