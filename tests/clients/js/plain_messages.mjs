// Scenario (a): two users register and log in, start the SDK's sync loop, and exchange
// plain messages both ways in a room one of them creates and invites the other to.
import { login, register, run, sdk, startClient, step, uniqueName, waitForMessage, waitForRoom } from "./common.mjs";

run("plain_messages", async (clients) => {
  step("alice and bob register");
  const aliceName = uniqueName("alice");
  const bobName = uniqueName("bob");
  const aliceCreds = await register(aliceName, "alice-password-1");
  await register(bobName, "bob-password-1");

  step("bob logs in with his password (a second device)");
  const bobCreds = await login(bobName, "bob-password-1", "bob laptop");

  step("both start their clients and reach sync state PREPARED");
  const alice = await startClient(aliceCreds);
  const bob = await startClient(bobCreds);
  clients.push(alice, bob);

  step("alice creates a private room and invites bob");
  const { room_id: roomId } = await alice.createRoom({
    name: "plain chat",
    preset: sdk.Preset.PrivateChat,
    invite: [bob.getUserId()],
  });

  step("bob sees the invite and joins");
  await waitForRoom(bob, roomId, "invite");
  await bob.joinRoom(roomId);
  await waitForRoom(bob, roomId, "join");

  step("alice sends, bob reads");
  await alice.sendTextMessage(roomId, "hello bob");
  await waitForMessage(bob, roomId, "hello bob");

  step("bob replies, alice reads");
  await bob.sendTextMessage(roomId, "hello alice");
  await waitForMessage(alice, roomId, "hello alice");

  step("both see bob as a joined member");
  const member = alice.getRoom(roomId).getMember(bob.getUserId());
  if (member?.membership !== "join") throw new Error(`alice sees bob as ${member?.membership}`);
});
