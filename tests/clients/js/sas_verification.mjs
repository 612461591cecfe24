// Scenario (e): interactive SAS (emoji) verification between two devices of one user,
// the way Element's "Verify this device" dialog does it. Alice bootstraps cross-signing
// on her first device, logs in on a new one, and the new device asks her other devices
// to verify it (requestOwnUserVerification). The first device accepts, both sides run
// m.sas.v1, compare the emoji and confirm. Every verification message is a to-device
// message through the server (PUT /sendToDevice, delivered in /sync's to_device).
// At the end the first device sees the new one verified by cross-signing, and the new
// device trusts alice's cross-signing identity.
import {
  login, passwordUia, register, run, sdk, startClient, step, uniqueName, waitFor, withTimeout,
} from "./common.mjs";
import {
  CryptoEvent, VerificationPhase, VerificationRequestEvent, VerifierEvent,
} from "matrix-js-sdk/lib/crypto-api/index.js";

async function deviceStatus(client, userId, deviceId) {
  // Re-download so the answer is the server's current one, not a cached list.
  await client.getCrypto().getUserDeviceInfo([userId], true);
  return client.getCrypto().getDeviceVerificationStatus(userId, deviceId);
}

/** Resolves once `request` reaches `phase`; fails at once if it is cancelled instead. */
function reachPhase(request, phase, who) {
  return withTimeout(new Promise((resolve, reject) => {
    const check = () => {
      if (request.phase === phase) {
        request.off(VerificationRequestEvent.Change, check);
        resolve();
      } else if (request.phase === VerificationPhase.Cancelled) {
        request.off(VerificationRequestEvent.Change, check);
        reject(new Error(`${who}: verification cancelled: ${request.cancellationCode} `
          + `(by ${request.cancellingUserId})`));
      }
    };
    request.on(VerificationRequestEvent.Change, check);
    check();
  }), 30000, `${who}'s verification request to reach phase ${VerificationPhase[phase]}`);
}

/** The ShowSas callbacks of `verifier`, whether emitted already or still to come. */
function showSas(verifier, who) {
  return withTimeout(new Promise((resolve, reject) => {
    const ready = verifier.getShowSasCallbacks();
    if (ready) resolve(ready);
    verifier.once(VerifierEvent.ShowSas, resolve);
    verifier.once(VerifierEvent.Cancel, (e) => reject(new Error(`${who}: SAS cancelled: ${e?.message ?? e?.getContent?.()?.code ?? e}`)));
  }), 30000, `${who} to show the SAS`);
}

run("sas_verification", async (clients) => {
  step("alice registers; her first device starts with Rust crypto and bootstraps cross-signing");
  const aliceName = uniqueName("alice");
  const password = "alice-password-1";
  const alice1Creds = await register(aliceName, password);
  const alice1 = await startClient(alice1Creds, { crypto: true, label: "alice1" });
  clients.push(alice1);
  await alice1.getCrypto().bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordUia(alice1Creds) });
  if (!(await alice1.getCrypto().isCrossSigningReady())) throw new Error("cross-signing not ready on alice1");

  step("alice logs in on a second (idle) and a third device, which starts with Rust crypto");
  // The second login is a device without crypto (no device keys, never answers), as the
  // issue's "third device" has a sibling that takes no part; the verification must go on
  // between the two devices that do.
  await login(aliceName, password, "alice idle laptop");
  const alice3Creds = await login(aliceName, password, "alice new phone");
  const alice3 = await startClient(alice3Creds, { crypto: true, label: "alice3" });
  clients.push(alice3);

  step("each device sees the other's keys; the third one is not verified yet");
  const before = await waitFor("alice1 to see alice3's device keys",
    () => deviceStatus(alice1, alice1Creds.userId, alice3Creds.deviceId));
  if (before.crossSigningVerified || before.signedByOwner) {
    throw new Error(`alice3 is verified before any verification: ${JSON.stringify(before)}`);
  }
  await waitFor("alice3 to see alice1's device keys",
    () => deviceStatus(alice3, alice1Creds.userId, alice1Creds.deviceId));
  if ((await alice3.getCrypto().getUserVerificationStatus(alice1Creds.userId)).isCrossSigningVerified()) {
    throw new Error("alice3 trusts alice's cross-signing identity before any verification");
  }

  step("alice3 asks her other devices to verify it (m.key.verification.request by to-device)");
  const received = withTimeout(new Promise((resolve) => {
    alice1.on(CryptoEvent.VerificationRequestReceived, resolve);
  }), 30000, "alice1 to receive the verification request");
  const request3 = await alice3.getCrypto().requestOwnUserVerification();

  step("alice1 receives the request from alice3 and accepts it (m.key.verification.ready)");
  const request1 = await received;
  if (!request1.isSelfVerification || request1.otherDeviceId !== alice3Creds.deviceId) {
    throw new Error(`alice1 got a request from ${request1.otherUserId}/${request1.otherDeviceId}, `
      + `self-verification ${request1.isSelfVerification}`);
  }
  await request1.accept();
  await reachPhase(request1, VerificationPhase.Ready, "alice1");
  await reachPhase(request3, VerificationPhase.Ready, "alice3");
  if (request3.otherDeviceId !== alice1Creds.deviceId) {
    throw new Error(`alice3's request went on with ${request3.otherDeviceId}, not alice1`);
  }

  step("alice3 starts SAS (m.key.verification.start); alice1 accepts it");
  const verifier3 = await request3.startVerification("m.sas.v1");
  await reachPhase(request1, VerificationPhase.Started, "alice1");
  const verifier1 = request1.verifier;
  if (!verifier1) throw new Error("alice1's request has no verifier after the start");
  // verify() resolves only when the whole exchange is done; keep the promises.
  const done3 = verifier3.verify();
  const done1 = verifier1.verify();
  done3.catch(() => {});
  done1.catch(() => {});

  step("both devices show the SAS; the emoji match and alice confirms on both");
  const [sas1, sas3] = await Promise.all([showSas(verifier1, "alice1"), showSas(verifier3, "alice3")]);
  const emoji1 = sas1.sas.emoji?.map(([symbol]) => symbol).join("");
  const emoji3 = sas3.sas.emoji?.map(([symbol]) => symbol).join("");
  if (!emoji1 || emoji1 !== emoji3) {
    throw new Error(`SAS emoji differ: alice1 ${emoji1}, alice3 ${emoji3}`);
  }
  console.log(`  emoji: ${emoji1}`);
  await Promise.all([sas1.confirm(), sas3.confirm()]);

  step("both verifiers finish (m.key.verification.mac, then m.key.verification.done)");
  await withTimeout(Promise.all([done1, done3]), 30000, "both verifiers to complete");
  await reachPhase(request1, VerificationPhase.Done, "alice1");
  await reachPhase(request3, VerificationPhase.Done, "alice3");

  step("alice1 sees alice3 verified by cross-signing (signed with her self-signing key)");
  await waitFor("alice3 cross-signing verified at alice1", async () =>
    (await deviceStatus(alice1, alice1Creds.userId, alice3Creds.deviceId))?.crossSigningVerified);

  step("alice3 trusts alice's cross-signing identity and sees itself cross-signed");
  await waitFor("alice's identity verified at alice3", async () => {
    await alice3.getCrypto().getUserDeviceInfo([alice1Creds.userId], true);
    return (await alice3.getCrypto().getUserVerificationStatus(alice1Creds.userId)).isCrossSigningVerified();
  });
  await waitFor("alice3 cross-signing verified at alice3", async () =>
    (await deviceStatus(alice3, alice1Creds.userId, alice3Creds.deviceId))?.crossSigningVerified);

  step("alice3 receives the cross-signing private keys by secret sharing (m.secret.request/send)");
  await waitFor("alice3 to hold the cross-signing private keys", async () => {
    const status = await alice3.getCrypto().getCrossSigningStatus();
    const keys = status.privateKeysCachedLocally;
    return keys.masterKey && keys.selfSigningKey && keys.userSigningKey;
  });
  if (!(await alice3.getCrypto().isCrossSigningReady())) throw new Error("cross-signing not ready on alice3");
});
