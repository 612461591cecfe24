// A page pushing a fake camera as simulcast through partytracks (sendEncodings with
// rids "f" and "h", the second at half resolution) or pulling one, pointed at our SFU.
// Query: ?hs=<server URL>&room=<room ID>&token=<access token>. simulcast.mjs calls
// window.start(), window.pull(metadata), window.prefer(rid) and window.video().
import { PartyTracks } from "partytracks/client";
import { firstValueFrom, of } from "rxjs";

const query = new URLSearchParams(location.search);
const prefix = `${query.get("hs")}/_matrix/client/unstable/org.roomserver.sfu/rooms/` +
  encodeURIComponent(query.get("room"));
const headers = new Headers({ Authorization: `Bearer ${query.get("token")}` });
const partyTracks = new PartyTracks({ prefix, headers });
window.state = { pushed: null, pulled: false, errors: [] };
const fail = (e) => window.state.errors.push(String(e && e.stack || e));

window.start = async () => {
  const stream = await navigator.mediaDevices.getUserMedia(
    { video: { width: 640, height: 480, frameRate: 30 } });
  partyTracks.push(of(stream.getVideoTracks()[0]), {
    sendEncodings$: of([{ rid: "f" }, { rid: "h", scaleResolutionDownBy: 2 }]),
  }).subscribe({ next: (metadata) => { window.state.pushed = metadata; }, error: fail });
};

window.pull = (metadata) => {
  partyTracks.pull(of(metadata)).subscribe({
    next: (track) => {
      window.state.pulled = true;
      const video = document.createElement("video");
      video.muted = true;
      video.srcObject = new MediaStream([track]);
      document.body.append(video);
      video.play().catch(fail);
    },
    error: fail,
  });
};

// Ask the SFU for another simulcast layer of the pulled track (tracks/update).
window.prefer = async (rid) => {
  const session = await firstValueFrom(partyTracks.session$);
  const pc = session.peerConnection;
  const mid = pc.getTransceivers().find((t) => t.receiver.track.kind === "video").mid;
  const r = await fetch(`${prefix}/sessions/${session.sessionId}/tracks/update`, {
    method: "PUT", headers,
    body: JSON.stringify({ tracks: [{ location: "remote", mid,
      simulcast: { preferredRid: rid, ridNotAvailable: "none" } }] }),
  });
  return [r.status, await r.json()];
};

// What the pulled video decodes: frames decoded and the last frame size.
window.video = async () => {
  const pc = await firstValueFrom(partyTracks.peerConnection$);
  let out = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      out = { frames: s.framesDecoded || 0, width: s.frameWidth, height: s.frameHeight,
        keyFrames: s.keyFramesDecoded, pli: s.pliCount };
    }
  });
  return out;
};

// What the pushing tab sends: per rid, frames encoded and size.
window.sent = async () => {
  const pc = await firstValueFrom(partyTracks.peerConnection$);
  const out = {};
  (await pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video") {
      out[s.rid] = { frames: s.framesEncoded, width: s.frameWidth, active: s.active,
        limitation: s.qualityLimitationReason };
    }
  });
  return out;
};

window.debug = async () => {
  const entries = partyTracks.history.entries.slice(-4);
  return { entries, sent: await window.sent().catch(String), video: await window.video().catch(String) };
};
