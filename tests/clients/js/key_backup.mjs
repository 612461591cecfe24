// Scenario (d): server-side key backup round trip, as Element's "Set up secure backup"
// and "Verify with Security Key" do it. Alice's first device sets up secret storage
// with a recovery key, cross-signing and a new key backup, sends encrypted messages and
// backs their room key up; the device is then gone. A new login enters the recovery
// key, loads the backup key from secret storage, restores the backup and reads the old
// messages.
import {
  createEncryptedRoom, login, passwordUia, register, run, sdk, startClient, step, uniqueName,
  waitFor, waitForMessage,
} from "./common.mjs";

/** What a user typing the recovery key gives the SDK whenever it asks for it. */
function recoveryKeyCallbacks(holder) {
  return {
    getSecretStorageKey: async ({ keys }) => {
      const keyId = Object.keys(keys)[0];
      return holder.key ? [keyId, holder.key.privateKey] : null;
    },
  };
}

run("key_backup", async (clients) => {
  step("alice registers; her first device starts with Rust crypto");
  const aliceName = uniqueName("alice");
  const creds = await register(aliceName, "alice-password-1");
  const holder = {};
  const alice1 = await startClient(creds, { crypto: true, cryptoCallbacks: recoveryKeyCallbacks(holder), label: "alice1" });
  clients.push(alice1);
  const crypto1 = alice1.getCrypto();

  step("she sets up cross-signing, secret storage with a recovery key, and a key backup");
  holder.key = await crypto1.createRecoveryKeyFromPassphrase();
  await crypto1.bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordUia(creds) });
  await crypto1.bootstrapSecretStorage({
    createSecretStorageKey: async () => holder.key,
    setupNewSecretStorage: true,
    setupNewKeyBackup: true,
  });
  const version = await waitFor("an active key backup on alice1",
    () => crypto1.getActiveSessionBackupVersion());
  const info = await alice1.http.authedRequest(sdk.Method.Get, "/room_keys/version");
  if (info.version !== version || info.algorithm !== "m.megolm_backup.v1.curve25519-aes-sha2") {
    throw new Error(`GET /room_keys/version answered ${JSON.stringify(info)} (active ${version})`);
  }

  step("she writes in an encrypted room");
  const roomId = await createEncryptedRoom(alice1, "diary");
  await alice1.sendTextMessage(roomId, "dear diary, part one");
  await alice1.sendTextMessage(roomId, "dear diary, part two");

  step("the room key reaches the server's backup");
  await waitFor("the room's session in GET /room_keys/keys", async () => {
    const keys = await alice1.http.authedRequest(sdk.Method.Get, "/room_keys/keys", { version });
    return Object.keys(keys.rooms?.[roomId]?.sessions ?? {}).length > 0;
  });
  const counted = await alice1.http.authedRequest(sdk.Method.Get, `/room_keys/version/${version}`);
  if (!(counted.count >= 1) || !counted.etag) {
    throw new Error(`backup version lacks count/etag after upload: ${JSON.stringify(counted)}`);
  }

  step("the first device goes away");
  alice1.stopClient();
  clients.length = 0;

  step("alice logs in on a new device, which cannot read the old messages yet");
  const creds2 = await login(aliceName, "alice-password-1", "alice new laptop");
  const holder2 = {};
  const alice2 = await startClient(creds2, { crypto: true, cryptoCallbacks: recoveryKeyCallbacks(holder2), label: "alice2" });
  clients.push(alice2);
  const crypto2 = alice2.getCrypto();
  await waitFor("the diary room at the new device", () => alice2.getRoom(roomId));

  step("she enters her recovery key; the device loads the backup key and restores");
  holder2.key = holder.key;
  await crypto2.loadSessionBackupPrivateKeyFromSecretStorage();
  const check = await crypto2.checkKeyBackupAndEnable();
  if (!check?.backupInfo || check.backupInfo.version !== version) {
    throw new Error(`checkKeyBackupAndEnable found ${JSON.stringify(check)}`);
  }
  const restored = await crypto2.restoreKeyBackup();
  if (restored.imported < 1) throw new Error(`restored nothing: ${JSON.stringify(restored)}`);

  step("the new device decrypts the old messages");
  await waitForMessage(alice2, roomId, "dear diary, part one", { encrypted: true });
  await waitForMessage(alice2, roomId, "dear diary, part two", { encrypted: true });
});
