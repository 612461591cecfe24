// Scenario (e): bob registers an HTTP pusher pointing at the test's push gateway
// (PUSH_GATEWAY_URL, served by the Python test), alice mentions him and the gateway
// receives the notification with the right counts and tweaks; bob's /sync shows the
// highlight. Then bob adds an override rule with no actions for alice's messages: her
// next mention is not pushed (nor counted) while carol's mention after it is.
import { register, run, sdk, startClient, step, uniqueName, waitFor, waitForMessage, waitForRoom } from "./common.mjs";

const GATEWAY = process.env.PUSH_GATEWAY_URL;
if (!GATEWAY) throw new Error("PUSH_GATEWAY_URL is not set");

/** What the test's gateway has received so far (its own test-only listing endpoint). */
async function received() {
  const res = await fetch(`${GATEWAY}/_test/notifications`);
  return (await res.json()).map((body) => body.notification);
}

async function mention(sender, roomId, target, text) {
  const { event_id: eventId } = await sender.sendMessage(roomId, {
    msgtype: "m.text",
    body: `${target.getUserId()}: ${text}`,
    "m.mentions": { user_ids: [target.getUserId()] },
  });
  return eventId;
}

/** Waits for the room's unread_notifications (from /sync) to be total/highlight. */
async function waitForCounts(client, room, total, highlight) {
  const counts = () => [sdk.NotificationCountType.Total, sdk.NotificationCountType.Highlight]
    .map((type) => room.getUnreadNotificationCount(type));
  try {
    await waitFor(`bob's counts ${total}/${highlight}`,
      () => counts()[0] === total && counts()[1] === highlight);
  } catch (err) {
    // What a fresh /sync says, to tell the server's counts from the client's handling.
    const fresh = await client.http.authedRequest(sdk.Method.Get, "/sync", { timeout: "0" });
    const joined = fresh.rooms?.join?.[room.roomId];
    throw new Error(`${err.message}; bob's client shows total/highlight ${counts().join("/")}; `
      + `an initial /sync says unread_notifications ${JSON.stringify(joined?.unread_notifications)}`);
  }
}

run("push_gateway", async (clients) => {
  step("alice, bob and carol register and start");
  const names = ["alice", "bob", "carol"].map(uniqueName);
  const creds = await Promise.all(names.map((n) => register(n, `${n}-password`)));
  const [alice, bob, carol] = await Promise.all(creds.map((c) => startClient(c)));
  clients.push(alice, bob, carol);

  step("alice creates a room and invites both; they join");
  const { room_id: roomId } = await alice.createRoom({
    name: "push test", preset: sdk.Preset.PrivateChat, invite: [bob.getUserId(), carol.getUserId()],
  });
  for (const c of [bob, carol]) {
    await waitForRoom(c, roomId, "invite");
    await c.joinRoom(roomId);
  }

  step("bob sees the default push rules, including .m.rule.is_user_mention");
  const rules = await bob.getPushRules();
  const isMention = rules.global.override.find((r) => r.rule_id === ".m.rule.is_user_mention");
  if (!isMention?.enabled) throw new Error(`no enabled .m.rule.is_user_mention: ${JSON.stringify(rules.global.override)}`);

  step("bob registers an HTTP pusher at the test gateway");
  const pushkey = `bob-pushkey-${names[1]}`;
  await bob.setPusher({
    kind: "http",
    app_id: "org.roomserver.tests",
    app_display_name: "roomserver tests",
    device_display_name: "bob's phone",
    pushkey,
    lang: "en",
    data: { url: `${GATEWAY}/_matrix/push/v1/notify` },
  });
  const { pushers } = await bob.getPushers();
  if (!pushers.some((p) => p.pushkey === pushkey && p.data?.url?.startsWith(GATEWAY))) {
    throw new Error(`GET /pushers does not list the new pusher: ${JSON.stringify(pushers)}`);
  }

  step("bob has read everything so far");
  const bobRoom = await waitForRoom(bob, roomId, "join");
  await bob.sendReadReceipt(bobRoom.getLiveTimeline().getEvents().at(-1));

  step("alice mentions bob; the gateway receives it with unread count 1, highlighted");
  const first = await mention(alice, roomId, bob, "lunch at noon?");
  const n1 = await waitFor("the first mention at the push gateway",
    async () => (await received()).find((n) => n.event_id === first));
  const device = n1.devices?.[0];
  const problems = [];
  if (n1.room_id !== roomId) problems.push(`room_id ${n1.room_id}`);
  if (n1.sender !== alice.getUserId()) problems.push(`sender ${n1.sender}`);
  if (n1.type !== "m.room.message") problems.push(`type ${n1.type}`);
  if (n1.counts?.unread !== 1) problems.push(`counts ${JSON.stringify(n1.counts)} (want unread 1)`);
  if (n1.prio !== "high") problems.push(`prio ${n1.prio}`);
  if (device?.pushkey !== pushkey || device?.app_id !== "org.roomserver.tests") problems.push(`device ${JSON.stringify(device)}`);
  if (device?.tweaks?.highlight !== true || device?.tweaks?.sound !== "default") problems.push(`tweaks ${JSON.stringify(device?.tweaks)}`);
  if (!n1.content?.body?.includes("lunch at noon?")) problems.push(`content ${JSON.stringify(n1.content)}`);
  if (problems.length) throw new Error(`wrong notification: ${problems.join("; ")}\n${JSON.stringify(n1)}`);

  step("bob's sync counts the mention as a highlight");
  await waitForMessage(bob, roomId, `${bob.getUserId()}: lunch at noon?`);
  await waitForCounts(bob, bobRoom, 1, 1);

  step("bob adds an override rule silencing alice");
  await bob.addPushRule("global", sdk.PushRuleKind.Override, "silence-alice", {
    conditions: [{ kind: "event_match", key: "sender", pattern: alice.getUserId() }],
    actions: [],
  });
  const after = await bob.getPushRules();
  const silence = after.global.override.find((r) => r.rule_id === "silence-alice");
  if (!silence?.enabled || silence.actions.length) throw new Error(`rule not stored as sent: ${JSON.stringify(silence)}`);

  step("alice mentions bob again (silenced), then carol mentions him (pushed)");
  const silenced = await mention(alice, roomId, bob, "are you ignoring me?");
  await waitForMessage(bob, roomId, `${bob.getUserId()}: are you ignoring me?`);
  const control = await mention(carol, roomId, bob, "meeting moved to 3");
  const n3 = await waitFor("carol's mention at the push gateway",
    async () => (await received()).find((n) => n.event_id === control));
  if (n3.counts?.unread !== 2) throw new Error(`carol's mention counted ${JSON.stringify(n3.counts)} (want unread 2: the silenced one does not count)`);
  // A push of the silenced event would come before the later one; give stragglers a moment.
  await new Promise((r) => setTimeout(r, 1000));
  const leaked = (await received()).filter((n) => n.event_id === silenced);
  if (leaked.length) throw new Error(`the override rule did not suppress the push: ${JSON.stringify(leaked)}`);

  step("bob's sync counts two notifications, both highlights");
  await waitForCounts(bob, bobRoom, 2, 2);
});
