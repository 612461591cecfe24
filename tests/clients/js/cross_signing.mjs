// Scenario (c): alice sets up cross-signing on her first device (bootstrapCrossSigning,
// with user-interactive auth if the server asks), logs in on a second device, and signs
// that device with her self-signing key, as the SDK does at the end of a verification.
// Then her first device sees the new one verified by cross-signing, the new device sees
// itself signed by its owner, and bob (who shares an encrypted room with her) sees it signed too.
import {
  createEncryptedRoom, login, passwordUia, register, run, sdk, startClient, step, uniqueName, waitFor, waitForRoom,
} from "./common.mjs";

async function deviceStatus(client, userId, deviceId) {
  // Re-download so the answer is the server's current one, not a cached list.
  await client.getCrypto().getUserDeviceInfo([userId], true);
  return client.getCrypto().getDeviceVerificationStatus(userId, deviceId);
}

run("cross_signing", async (clients) => {
  step("alice and bob register; alice's first device and bob start with Rust crypto");
  const aliceName = uniqueName("alice");
  const aliceCreds = await register(aliceName, "alice-password-1");
  const bobCreds = await register(uniqueName("bob"), "bob-password-1");
  const alice1 = await startClient(aliceCreds, { crypto: true, label: "alice1" });
  const bob = await startClient(bobCreds, { crypto: true, label: "bob" });
  clients.push(alice1, bob);

  step("alice and bob share an encrypted room, so bob's crypto tracks alice's devices");
  const roomId = await createEncryptedRoom(alice1, "cross-signing", [bob.getUserId()]);
  await waitForRoom(bob, roomId, "invite");
  await bob.joinRoom(roomId);
  await waitForRoom(bob, roomId, "join");

  step("alice bootstraps cross-signing on her first device");
  await alice1.getCrypto().bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordUia(aliceCreds) });
  const status = await alice1.getCrypto().getCrossSigningStatus();
  if (!status.publicKeysOnDevice || !status.privateKeysCachedLocally.selfSigningKey) {
    throw new Error(`cross-signing not set up: ${JSON.stringify(status)}`);
  }
  await waitFor("the server to return alice's master key in /keys/query", async () => {
    const res = await alice1.http.authedRequest(sdk.Method.Post, "/keys/query", undefined,
      { device_keys: { [aliceCreds.userId]: [] } });
    return res.master_keys?.[aliceCreds.userId] && res.self_signing_keys?.[aliceCreds.userId];
  });
  if (!(await alice1.getCrypto().isCrossSigningReady())) throw new Error("cross-signing not ready");
  const own = await deviceStatus(alice1, aliceCreds.userId, aliceCreds.deviceId);
  if (!own?.crossSigningVerified) throw new Error(`first device not cross-signed: ${JSON.stringify(own)}`);

  step("alice logs in on a second device");
  const alice2Creds = await login(aliceName, "alice-password-1", "alice phone");
  const alice2 = await startClient(alice2Creds, { crypto: true, label: "alice2" });
  clients.push(alice2);

  step("her first device sees the new, unverified device");
  const before = await waitFor("alice1 to see alice2's device keys",
    () => deviceStatus(alice1, aliceCreds.userId, alice2Creds.deviceId));
  if (before.crossSigningVerified || before.signedByOwner) {
    throw new Error(`the new device is verified before anyone signed it: ${JSON.stringify(before)}`);
  }

  step("alice's first device cross-signs the second one");
  await alice1.getCrypto().crossSignDevice(alice2Creds.deviceId);

  step("her first device sees the second verified by cross-signing");
  await waitFor("alice2 cross-signing verified at alice1", async () =>
    (await deviceStatus(alice1, aliceCreds.userId, alice2Creds.deviceId))?.crossSigningVerified);

  step("the second device sees itself signed by its owner");
  await waitFor("alice2 signed by owner at alice2", async () =>
    (await deviceStatus(alice2, aliceCreds.userId, alice2Creds.deviceId))?.signedByOwner);

  step("bob sees alice's second device signed by alice's self-signing key");
  let atBob;
  try {
    await waitFor("alice2 signed by owner at bob", async () =>
      (atBob = await deviceStatus(bob, aliceCreds.userId, alice2Creds.deviceId))?.signedByOwner);
  } catch (err) {
    // Say what the server tells bob, so the failure points at the server or the client.
    const res = await bob.http.authedRequest(sdk.Method.Post, "/keys/query", undefined,
      { device_keys: { [aliceCreds.userId]: [] } });
    throw new Error(`${err.message}\nbob's status for alice2: ${JSON.stringify(atBob)}\n`
      + `the server's /keys/query for alice, asked by bob: ${JSON.stringify(res)}`);
  }
  const masterAtBob = await bob.getCrypto().getUserVerificationStatus(aliceCreds.userId);
  if (masterAtBob.isCrossSigningVerified()) {
    throw new Error("bob trusts alice's identity although he never verified her");
  }
});
