// Scenario: an image sent as Element sends one. Alice uploads a PNG with the SDK's
// uploadContent() and sends an m.image event pointing at it; Bob reads the event, then
// downloads the file and a 96x96 crop thumbnail through the authenticated media API
// (/_matrix/client/v1/media, what Element uses since Matrix 1.11) with the URLs the SDK
// builds itself (mxcUrlToHttp with useAuthentication). The download must be
// byte-identical; the thumbnail an image of the requested size.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { register, run, sdk, startClient, step, uniqueName, waitFor, waitForRoom } from "./common.mjs";

const IMAGE_PATH = process.env.IMAGE_PATH;
if (!IMAGE_PATH) throw new Error("IMAGE_PATH is not set");

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

/** Width and height from a PNG, JPEG or WebP header. */
function imageSize(buf) {
  if (buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) {
    return { type: "png", width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
  }
  if (buf[0] === 0xff && buf[1] === 0xd8) {
    let i = 2;
    while (i < buf.length) {
      if (buf[i] !== 0xff) throw new Error("bad JPEG marker");
      const marker = buf[i + 1];
      const length = buf.readUInt16BE(i + 2);
      // SOF0..SOF15 except DHT (c4), JPG (c8) and DAC (cc) carry the frame size
      if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
        return { type: "jpeg", height: buf.readUInt16BE(i + 5), width: buf.readUInt16BE(i + 7) };
      }
      i += 2 + length;
    }
  }
  if (buf.toString("ascii", 0, 4) === "RIFF" && buf.toString("ascii", 8, 12) === "WEBP") {
    const chunk = buf.toString("ascii", 12, 16);
    if (chunk === "VP8X") return { type: "webp", width: 1 + buf.readUIntLE(24, 3), height: 1 + buf.readUIntLE(27, 3) };
    if (chunk === "VP8 ") return { type: "webp", width: buf.readUInt16LE(26) & 0x3fff, height: buf.readUInt16LE(28) & 0x3fff };
    if (chunk === "VP8L") {
      const b = buf.readUInt32LE(21);
      return { type: "webp", width: (b & 0x3fff) + 1, height: ((b >> 14) & 0x3fff) + 1 };
    }
  }
  throw new Error(`not an image: ${buf.subarray(0, 16).toString("hex")}`);
}

/** GET with the client's access token, as Element's service worker does for media. */
async function authedGet(client, url) {
  const response = await fetch(url, { headers: { Authorization: `Bearer ${client.getAccessToken()}` } });
  if (response.status !== 200) {
    throw new Error(`GET ${new URL(url).pathname} -> ${response.status} ${await response.text()}`);
  }
  return { response, bytes: Buffer.from(await response.arrayBuffer()) };
}

run("media", async (clients) => {
  const image = readFileSync(IMAGE_PATH);
  const original = imageSize(image);

  step("alice and bob register and start their clients");
  const alice = await startClient(await register(uniqueName("alice"), "alice-password-1"));
  const bob = await startClient(await register(uniqueName("bob"), "bob-password-1"));
  clients.push(alice, bob);

  step("alice creates a room with bob in it");
  const { room_id: roomId } = await alice.createRoom({ preset: sdk.Preset.PrivateChat, invite: [bob.getUserId()] });
  await waitForRoom(bob, roomId, "invite");
  await bob.joinRoom(roomId);
  await waitForRoom(bob, roomId, "join");

  step("the server's media config says how large an upload may be");
  const config = await alice.getMediaConfig(true);
  if (!(config["m.upload.size"] >= image.length)) throw new Error(`m.upload.size: ${JSON.stringify(config)}`);

  step("alice uploads the image and sends it as m.image");
  const { content_uri: mxc } = await alice.uploadContent(image, { name: "photo.png", type: "image/png" });
  if (!mxc?.startsWith("mxc://")) throw new Error(`upload answered ${mxc}`);
  await alice.sendMessage(roomId, {
    msgtype: "m.image",
    body: "photo.png",
    url: mxc,
    info: { mimetype: "image/png", size: image.length, w: original.width, h: original.height },
  });

  step("bob receives the m.image event");
  const event = await waitFor("bob to read the m.image", () =>
    bob.getRoom(roomId)?.getLiveTimeline().getEvents()
      .find((e) => e.getType() === "m.room.message" && e.getContent().msgtype === "m.image"));
  const url = event.getContent().url;

  step("bob downloads the file: byte-identical, with its type and immutable caching");
  const download = await authedGet(bob, bob.mxcUrlToHttp(url, undefined, undefined, undefined, false, true, true));
  if (sha256(download.bytes) !== sha256(image)) throw new Error(`download differs: ${download.bytes.length} bytes`);
  const type = download.response.headers.get("content-type");
  if (type !== "image/png") throw new Error(`Content-Type ${type}`);
  if (!/immutable/.test(download.response.headers.get("cache-control") || "")) {
    throw new Error(`Cache-Control ${download.response.headers.get("cache-control")}`);
  }

  step("bob fetches a 96x96 crop thumbnail and an 800x600 scaled one");
  const crop = await authedGet(bob, bob.mxcUrlToHttp(url, 96, 96, "crop", false, true, true));
  const cropSize = imageSize(crop.bytes);
  if (cropSize.width !== 96 || cropSize.height !== 96) throw new Error(`crop thumbnail ${JSON.stringify(cropSize)}`);
  const scale = await authedGet(bob, bob.mxcUrlToHttp(url, 800, 600, "scale", false, true, true));
  const scaleSize = imageSize(scale.bytes);
  const fit = Math.min(800 / original.width, 600 / original.height, 1);
  const want = { width: Math.round(original.width * fit), height: Math.round(original.height * fit) };
  if (Math.abs(scaleSize.width - want.width) > 1 || Math.abs(scaleSize.height - want.height) > 1) {
    throw new Error(`scale thumbnail ${JSON.stringify(scaleSize)}, expected about ${JSON.stringify(want)}`);
  }

  step("without a token the authenticated download is refused");
  const anonymous = await fetch(bob.mxcUrlToHttp(url, undefined, undefined, undefined, false, true, true));
  if (anonymous.status !== 401) throw new Error(`anonymous download answered ${anonymous.status}`);
});
