// Shared plumbing for the matrix-js-sdk scenarios run by tests/clients/test_js_sdk.py.
//
// Every scenario is a real client doing what Element Web does through the same SDK
// calls; this module only adds what a test needs around it: a named step log (so a
// failure says how far the scenario got), bounded waits, and a fetch wrapper that prints
// every non-2xx answer of the server (method, path, status, errcode) so a failing run
// names the endpoint that answered wrongly.
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

export { sdk };

export const HS_URL = process.env.HS_URL;
if (!HS_URL) {
  console.error("HS_URL is not set");
  process.exit(2);
}

// The SDK's child loggers (and the Rust crypto's tracing) log at debug level whatever
// the root logger says; dropping debug and info keeps a failure's output readable.
// JS_SDK_LOG=debug shows everything.
if (process.env.JS_SDK_LOG !== "debug") {
  logger.setLevel("warn");
  console.debug = () => {};
  console.info = () => {};
}

const startedAt = Date.now();
let currentStep = "start";

/** Prints and remembers what the scenario is doing now. */
export function step(description) {
  currentStep = description;
  console.log(`[${((Date.now() - startedAt) / 1000).toFixed(1)}s] ${description}`);
}

/** Every non-2xx answer the clients got, as "METHOD /path -> status errcode". */
export const httpErrors = [];

function recordingFetch(who) {
  return async (input, init = {}) => {
    const response = await fetch(input, init);
    if (response.status >= 400) {
      const url = new URL(input.url ?? String(input));
      let errcode = "";
      try {
        errcode = (await response.clone().json()).errcode || "";
      } catch {
        // not JSON: the status says enough
      }
      const line = `${(init.method || "GET").toUpperCase()} ${url.pathname} -> ${response.status} ${errcode}`;
      httpErrors.push(`${who}: ${line}`);
      console.log(`  http ${who}: ${line}`);
    }
    return response;
  };
}

/** A username unique to this run, so scenarios never collide on one server. */
export function uniqueName(base) {
  return `${base}${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * Registers an account the way a client does (a first request answered 401 with the
 * flows, then m.login.dummy with the session) and returns its credentials.
 */
export async function register(username, password) {
  const client = sdk.createClient({ baseUrl: HS_URL, fetchFn: recordingFetch(username) });
  let session;
  try {
    await client.registerRequest({ username, password });
  } catch (err) {
    if (err.httpStatus !== 401 || !err.data?.flows) throw err;
    session = err.data.session;
  }
  const res = await client.registerRequest({
    username,
    password,
    initial_device_display_name: `${username} first device`,
    auth: { type: "m.login.dummy", session },
  });
  return { userId: res.user_id, accessToken: res.access_token, deviceId: res.device_id, password };
}

/** Logs in with a password as a new device (m.login.password, m.id.user identifier). */
export async function login(username, password, deviceName) {
  const client = sdk.createClient({ baseUrl: HS_URL, fetchFn: recordingFetch(username) });
  const flows = await client.loginFlows();
  if (!flows.flows.some((f) => f.type === "m.login.password")) {
    throw new Error(`server offers no m.login.password flow: ${JSON.stringify(flows)}`);
  }
  const res = await client.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user: username },
    password,
    initial_device_display_name: deviceName,
  });
  return { userId: res.user_id, accessToken: res.access_token, deviceId: res.device_id, password };
}

/**
 * A MatrixClient for an account, with Rust crypto (wasm, in memory) when `crypto` is set,
 * started and synced to PREPARED. Fails at once if the sync loop reports ERROR, with the
 * error the SDK saw (which names the request that failed).
 */
export async function startClient(creds, { crypto = false, cryptoCallbacks = {}, label } = {}) {
  const name = label || `${creds.userId}/${creds.deviceId}`;
  const client = sdk.createClient({
    baseUrl: HS_URL,
    userId: creds.userId,
    accessToken: creds.accessToken,
    deviceId: creds.deviceId,
    fetchFn: recordingFetch(name),
    cryptoCallbacks,
  });
  if (crypto) {
    // No IndexedDB in Node: the Rust crypto store lives in memory for this process.
    await client.initRustCrypto({ useIndexedDB: false });
  }
  const prepared = new Promise((resolve, reject) => {
    const onSync = (state, _prev, data) => {
      if (state === "PREPARED" || state === "SYNCING") {
        client.off(sdk.ClientEvent.Sync, onSync);
        resolve();
      } else if (state === "ERROR") {
        client.off(sdk.ClientEvent.Sync, onSync);
        const e = data?.error;
        reject(new Error(`${name}: sync state ERROR: ${e?.httpStatus ?? ""} ${e?.errcode ?? ""} ${e?.message ?? e}`));
      }
    };
    client.on(sdk.ClientEvent.Sync, onSync);
  });
  await client.startClient({ initialSyncLimit: 20, lazyLoadMembers: true });
  await withTimeout(prepared, 60000, `${name} reaching sync state PREPARED`);
  return client;
}

/** Resolves with `promise` or fails after `ms` naming what was awaited. */
export async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` (which may be async) until it returns a truthy value. */
export async function waitFor(what, check, ms = 30000, interval = 200) {
  const deadline = Date.now() + ms;
  let lastError;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      // An endpoint the server does not have will not appear by waiting.
      if (err.errcode === "M_UNRECOGNIZED") throw err;
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, interval));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${lastError ? `: ${lastError.stack || lastError}` : ""}`);
}

/** The room once the client's sync has it with the given membership. */
export function waitForRoom(client, roomId, membership = "join") {
  return waitFor(`${client.getUserId()} to see ${roomId} as ${membership}`, () => {
    const room = client.getRoom(roomId);
    return room && room.getMyMembership() === membership ? room : null;
  });
}

/**
 * The m.room.message with this body once it is in the client's live timeline, decrypted
 * if it came encrypted (then `encrypted` must be true: the test checks the wire form).
 */
export function waitForMessage(client, roomId, body, { encrypted = false, ms = 30000 } = {}) {
  return waitFor(`${client.getUserId()} to read "${body}" in ${roomId}`, async () => {
    const room = client.getRoom(roomId);
    if (!room) return null;
    for (const event of room.getLiveTimeline().getEvents()) {
      if (event.isEncrypted()) await client.decryptEventIfNeeded(event);
      if (event.getType() === "m.room.message" && event.getContent().body === body) {
        if (event.isDecryptionFailure()) return null;
        if (encrypted !== event.isEncrypted()) {
          throw new Error(`"${body}" arrived ${event.isEncrypted() ? "encrypted" : "in clear"}`);
        }
        return event;
      }
      if (event.isDecryptionFailure()) {
        // Remember why, in case the wait times out: the error message is the diagnosis.
        lastDecryptionFailure = `${event.getId()}: ${event.decryptionFailureReason}`;
      }
    }
    return null;
  }, ms).catch((err) => {
    throw new Error(`${err.message}${lastDecryptionFailure ? ` (last decryption failure ${lastDecryptionFailure})` : ""}`);
  });
}
let lastDecryptionFailure = "";

/** Runs a scenario: exits 0 when it completes, 1 with the failing step on any error. */
export function run(name, scenario) {
  const clients = [];
  const watchdog = setTimeout(() => {
    console.error(`${name}: whole scenario timed out during step "${currentStep}"`);
    report();
    process.exit(1);
  }, Number(process.env.SCENARIO_TIMEOUT_MS || 240000));
  scenario(clients)
    .then(() => {
      step(`${name}: done`);
      report();
      clearTimeout(watchdog);
      for (const c of clients) c.stopClient();
      process.exit(0);
    })
    .catch((err) => {
      console.error(`${name}: FAILED during step "${currentStep}":\n${err.stack || err}`);
      if (err.data) console.error(`server answered: ${JSON.stringify(err.data)}`);
      report();
      process.exit(1);
    });
}

function report() {
  if (httpErrors.length) {
    console.log(`non-2xx answers seen by the clients (${httpErrors.length}):`);
    for (const line of new Set(httpErrors)) console.log(`  ${line}`);
  }
}

/**
 * Waits until the server returns each device's identity keys from /keys/query, as asked
 * by `client` (the request its crypto makes, sent here so a failure names it).
 */
export async function waitForDeviceKeys(client, credsList) {
  const query = { device_keys: Object.fromEntries(credsList.map((c) => [c.userId, []])) };
  await waitFor(`device keys of ${credsList.map((c) => c.deviceId)} in /keys/query`, async () => {
    const res = await client.http.authedRequest(sdk.Method.Post, "/keys/query", undefined, query);
    return credsList.every((c) => res.device_keys?.[c.userId]?.[c.deviceId]?.keys?.[`ed25519:${c.deviceId}`]);
  });
}

/**
 * The `authUploadDeviceSigningKeys` callback of bootstrapCrossSigning, as Element's
 * dialog behaves: try without auth (the spec lets a first upload of cross-signing keys
 * through), and on 401 answer the offered m.login.password stage with the session.
 */
export function passwordUia(creds) {
  return async (makeRequest) => {
    try {
      await makeRequest(null);
    } catch (err) {
      if (err.httpStatus !== 401 || !err.data?.flows) throw err;
      const offered = err.data.flows.some((f) => f.stages?.[0] === "m.login.password");
      if (!offered) throw new Error(`no m.login.password UIA flow offered: ${JSON.stringify(err.data)}`);
      await makeRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: creds.userId },
        password: creds.password,
        session: err.data.session,
      });
    }
  };
}

/** Creates an encrypted private room (megolm) inviting `invite` and returns its id. */
export async function createEncryptedRoom(client, name, invite = []) {
  const { room_id: roomId } = await client.createRoom({
    name,
    preset: sdk.Preset.PrivateChat,
    invite,
    initial_state: [{
      type: "m.room.encryption",
      state_key: "",
      content: { algorithm: "m.megolm.v1.aes-sha2" },
    }],
  });
  await waitFor(`${client.getUserId()}'s client to know ${roomId} is encrypted`,
    async () => client.getCrypto().isEncryptionEnabledInRoom(roomId));
  return roomId;
}
