// A call page written for Cloudflare Realtime with the npm package partytracks, pointed
// at our SFU instead: only `prefix` (the room's SFU API) and the Matrix token differ.
// Query: ?hs=<server URL>&room=<room ID>&token=<access token>. drive.mjs calls
// window.start(), window.pull(metadata) and window.inbound() and reads window.state.
import { PartyTracks } from "partytracks/client";
import { firstValueFrom, of } from "rxjs";

const query = new URLSearchParams(location.search);
const partyTracks = new PartyTracks({
  prefix: `${query.get("hs")}/_matrix/client/unstable/org.roomserver.sfu/rooms/` +
    encodeURIComponent(query.get("room")),
  headers: new Headers({ Authorization: `Bearer ${query.get("token")}` }),
});
window.state = { pushed: null, pulled: false, errors: [] };
const fail = (e) => window.state.errors.push(String(e && e.stack || e));

// Push the (fake) microphone; the metadata others pull it by appears in state.pushed.
window.start = async () => {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  partyTracks.push(of(stream.getAudioTracks()[0])).subscribe({
    next: (metadata) => { window.state.pushed = metadata; }, error: fail });
};

// Pull someone's track and play it; window.unpull() stops (partytracks closes it).
let pulling = null;
window.pull = (metadata) => {
  pulling = partyTracks.pull(of(metadata)).subscribe({
    next: (track) => {
      window.state.pulled = true;
      const audio = new Audio();
      audio.srcObject = new MediaStream([track]);
      audio.play().catch(fail);
    },
    error: fail,
  });
};

window.unpull = () => pulling.unsubscribe();

// The last tracks/close exchange, once partytracks has applied our answer to it.
window.closeSettled = async () => {
  const pc = await firstValueFrom(partyTracks.peerConnection$);
  const response = [...partyTracks.history.entries].reverse().find(
    (e) => e.type === "response" && e.endpoint.includes("/tracks/close"));
  if (!response || pc.signalingState !== "stable") return null;
  return { answer: response.body.sessionDescription?.type, state: pc.connectionState };
};

// What arrived: RTP packets of the pulled track, and the audio levels the RFC 6464
// header extension carried (getSynchronizationSources reads them from it).
window.inbound = async () => {
  const pc = await firstValueFrom(partyTracks.peerConnection$);
  let packets = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") packets += s.packetsReceived;
  });
  const levels = pc.getReceivers().flatMap((r) =>
    r.getSynchronizationSources().map((s) => s.audioLevel));
  return { packets, levels };
};

// For a failure report: the last API exchanges and what the browser makes of our offer.
window.debug = async () => {
  const entries = partyTracks.history.entries.slice(-4);
  const pc = await firstValueFrom(partyTracks.peerConnection$);
  const offer = [...entries].reverse().find((e) => e.body && e.body.sessionDescription &&
    e.body.sessionDescription.type === "offer" && e.type === "response");
  let error = null;
  if (offer) {
    try {
      await pc.setRemoteDescription(offer.body.sessionDescription);
    } catch (e) { error = String(e); }
  }
  return { signalingState: pc.signalingState, error, entries };
};
