// Scenario (b): an encrypted room (m.room.encryption, m.megolm.v1.aes-sha2). Both
// clients run the SDK's Rust crypto; each message is encrypted by its sender and
// decrypted by the other side, the megolm room key travelling by to-device (olm, over a
// claimed one-time key). Nothing here touches keys by hand: the SDK uploads, queries,
// claims and shares as Element does.
import { createEncryptedRoom, register, waitForDeviceKeys, run, sdk, startClient, step, uniqueName, waitFor, waitForMessage, waitForRoom } from "./common.mjs";

run("encrypted_room", async (clients) => {
  step("alice and bob register");
  const aliceCreds = await register(uniqueName("alice"), "alice-password-1");
  const bobCreds = await register(uniqueName("bob"), "bob-password-1");

  step("both start with Rust crypto and reach PREPARED");
  const alice = await startClient(aliceCreds, { crypto: true });
  const bob = await startClient(bobCreds, { crypto: true });
  clients.push(alice, bob);

  step("both devices have uploaded their identity and one-time keys");
  await waitForDeviceKeys(alice, [aliceCreds, bobCreds]);

  step("alice creates an encrypted room and invites bob");
  const roomId = await createEncryptedRoom(alice, "secret chat", [bob.getUserId()]);

  step("bob sees the invite and joins");
  await waitForRoom(bob, roomId, "invite");
  await bob.joinRoom(roomId);
  await waitForRoom(bob, roomId, "join");
  await waitFor("alice to see bob joined",
    () => alice.getRoom(roomId)?.getMember(bob.getUserId())?.membership === "join");

  step("alice sends an encrypted message, bob decrypts it");
  await alice.sendTextMessage(roomId, "the eagle lands at dawn");
  const atBob = await waitForMessage(bob, roomId, "the eagle lands at dawn", { encrypted: true });
  if (atBob.getWireType() !== "m.room.encrypted") throw new Error(`wire type ${atBob.getWireType()}`);

  step("bob replies encrypted, alice decrypts it");
  await bob.sendTextMessage(roomId, "copy that");
  await waitForMessage(alice, roomId, "copy that", { encrypted: true });

  step("the server only ever saw ciphertext");
  const { chunk } = await bob.createMessagesRequest(roomId, null, 20, sdk.Direction.Backward);
  const clear = chunk.filter((e) => e.type === "m.room.message");
  if (clear.length) throw new Error(`server holds clear messages: ${JSON.stringify(clear)}`);
  if (chunk.filter((e) => e.type === "m.room.encrypted").length < 2) {
    throw new Error(`expected two m.room.encrypted events in /messages: ${JSON.stringify(chunk)}`);
  }
});
