// Scenario: the MatrixRTC membership manager of matrix-js-sdk (the code Element Call runs)
// joins a call in a room: it schedules its delayed leave (MSC4140), posts its call.member
// state and keeps restarting the leave. Then its network dies (a crash): the server sends
// the delayed leave and the other member sees the call empty. Also the SDK's delayed-event
// helpers directly: list, send now, cancel.
import { login, register, run, sdk, startClient, step, uniqueName, waitFor, waitForRoom } from "./common.mjs";

const MEMBER = "org.matrix.msc3401.call.member";
const FOCUS = { type: "livekit", livekit_service_url: "https://lk.invalid" };

run("matrixrtc_delayed_leave", async (clients) => {
  step("alice and bob register and start their clients");
  const aliceName = uniqueName("alice");
  const bobName = uniqueName("bob");
  const aliceCreds = await register(aliceName, "alice-password-1");
  await register(bobName, "bob-password-1");
  const bobCreds = await login(bobName, "bob-password-1", "bob call device");
  const alice = await startClient(aliceCreds);
  const bob = await startClient(bobCreds);
  clients.push(alice, bob);

  step("the server advertises delayed events");
  if (!(await bob.doesServerSupportUnstableFeature("org.matrix.msc4140"))) {
    throw new Error("org.matrix.msc4140 not in /versions unstable_features");
  }

  step("alice creates a public room, bob joins (no power given)");
  const { room_id: roomId } = await alice.createRoom({ preset: sdk.Preset.PublicChat });
  await bob.joinRoom(roomId);
  await waitForRoom(bob, roomId, "join");

  step("the SDK's helpers: a delayed message listed, sent now, another cancelled");
  const { delay_id: now } = await bob._unstable_sendDelayedEvent(
    roomId, { delay: 600000 }, null, "m.room.message", { msgtype: "m.text", body: "sent by delay" });
  const { delay_id: never } = await bob._unstable_sendDelayedEvent(
    roomId, { delay: 600000 }, null, "m.room.message", { msgtype: "m.text", body: "cancelled" });
  const listed = await bob._unstable_getDelayedEvents();
  const ids = listed.delayed_events.map((e) => e.delay_id).sort();
  if (JSON.stringify(ids) !== JSON.stringify([now, never].sort())) {
    throw new Error(`listed ${JSON.stringify(listed)}`);
  }
  await bob._unstable_updateDelayedEvent(now, "send");
  await bob._unstable_updateDelayedEvent(never, "cancel");
  await waitFor("alice sees the message sent by delay", () =>
    alice.getRoom(roomId)?.getLiveTimeline().getEvents()
      .some((e) => e.getContent().body === "sent by delay"));

  step("bob joins the call with the MatrixRTC membership manager");
  const bobRoom = bob.getRoom(roomId);
  const session = bob.matrixRTC.getRoomSession(bobRoom);
  session.joinRoomSession([FOCUS], { type: "livekit", focus_selection: "oldest_membership" }, {
    useNewMembershipManager: true,
    membershipServerSideExpiryTimeout: 3000,
    membershipKeepAlivePeriod: 1000,
  });
  const stateKey = `_${bob.getUserId()}_${bob.getDeviceId()}`;
  await waitFor("alice sees bob's call membership", () => {
    const ev = alice.getRoom(roomId)?.currentState.getStateEvents(MEMBER, stateKey);
    return ev && ev.getContent().focus_active;
  }, 60000);
  await waitFor("bob's delayed leave is scheduled on the server", async () => {
    const { delayed_events: pending } = await bob._unstable_getDelayedEvents();
    return pending.some((e) => e.type === MEMBER && e.state_key === stateKey);
  });

  step("bob keeps the call alive for a while (restarts of the delayed leave)");
  await new Promise((r) => setTimeout(r, 4000));
  const still = alice.getRoom(roomId).currentState.getStateEvents(MEMBER, stateKey);
  if (!still?.getContent().focus_active) throw new Error("bob's membership went while he was alive");

  step("bob's network dies: nothing more reaches the server");
  bob.http.opts.fetchFn = () => new Promise(() => {});
  bob.stopClient();

  step("the server sends bob's delayed leave; alice sees his membership empty");
  await waitFor("bob's membership to empty", () => {
    const ev = alice.getRoom(roomId)?.currentState.getStateEvents(MEMBER, stateKey);
    return ev && Object.keys(ev.getContent()).length === 0;
  }, 60000);
  process.exitCode = 0;
});
