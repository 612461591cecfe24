// A group-call page on partytracks, pointed at the room's SFU API: push the microphone,
// pull any number of others' tracks by name, and report per pulled track what the
// browser *decoded*, not only what arrived. Query: ?hs=&room=&token= as for main.js.
// TURN servers: partytracks fetches generate-ice-servers without its `headers`, so
// the page fetches them itself (with the token) and hands them over as `iceServers`.
// conference.mjs drives it through the window.* functions below and reads window.state.
import { PartyTracks } from "partytracks/client";
import { firstValueFrom, of } from "rxjs";

const query = new URLSearchParams(location.search);
const prefix = `${query.get("hs")}/_matrix/client/unstable/org.roomserver.sfu/rooms/` +
  encodeURIComponent(query.get("room"));
const headers = new Headers({ Authorization: `Bearer ${query.get("token")}` });
window.state = { pushed: null, iceServers: null, errors: [] };
const fail = (e) => window.state.errors.push(String(e && e.stack || e));
let partyTracks = null;
let microphone = null;
const pulls = new Map(); // name -> {subscription, track, peakRms}

window.join = async () => {
  const answer = await fetch(`${prefix}/generate-ice-servers`, { headers });
  window.state.iceServers = (await answer.json()).iceServers;
  partyTracks = new PartyTracks({ prefix, headers, iceServers: window.state.iceServers });
  microphone = await window.push("pushed");
};

// Push another microphone track (a second device); its metadata appears in state[key].
window.push = async (key) => {
  const track = (await navigator.mediaDevices.getUserMedia({ audio: true })).getAudioTracks()[0];
  partyTracks.push(of(track)).subscribe({
    next: (metadata) => { window.state[key] = metadata; }, error: fail });
  return track;
};

// Mute or unmute as a call UI does: a disabled track still sends, digital silence.
window.setMicrophone = (enabled) => { microphone.enabled = enabled; };

// Pull a track; it is played (Chromium feeds a remote track into WebAudio only while
// some element plays it, and measures inbound-rtp audio levels at playout) and
// analysed (WebAudio: the decoded samples).
window.pull = (name, metadata) => {
  const entry = { subscription: null, track: null, peakRms: 0 };
  pulls.set(name, entry);
  entry.subscription = partyTracks.pull(of(metadata)).subscribe({
    next: (track) => {
      const stream = new MediaStream([track]);
      const audio = new Audio();
      audio.srcObject = stream;
      audio.play().catch(fail);
      const context = new AudioContext();
      const analyser = context.createAnalyser();
      analyser.fftSize = 2048;
      context.createMediaStreamSource(stream).connect(analyser);
      context.resume().catch(fail);
      // the fake microphone beeps once a second: keep the loudest moment seen
      const samples = new Float32Array(analyser.fftSize);
      setInterval(() => {
        analyser.getFloatTimeDomainData(samples);
        const rms = Math.sqrt(samples.reduce((sum, v) => sum + v * v, 0) / samples.length);
        entry.peakRms = Math.max(entry.peakRms, rms);
      }, 50);
      entry.track = track;
    },
    error: fail,
  });
};

// Stop pulling a track: partytracks stops its transceiver and closes it with an offer.
window.unpull = (name) => {
  pulls.get(name).subscription.unsubscribe();
  pulls.delete(name);
};

// Whether the last tracks/close was answered and the connection is stable again.
window.closeSettled = async () => {
  const pc = await firstValueFrom(partyTracks.peerConnection$);
  const answered = partyTracks.history.entries.some(
    (e) => e.type === "response" && e.endpoint.includes("/tracks/close"));
  return answered && pc.signalingState === "stable" && pc.connectionState === "connected";
};

// Per pulled track: RTP that arrived (packets, bytes), what the decoder made of it
// (totalAudioEnergy and audioLevel of inbound-rtp are measured on decoded audio;
// concealed samples are the ones it had to invent) and the loudest WebAudio RMS seen.
window.hearing = async () => {
  const pc = partyTracks && await firstValueFrom(partyTracks.peerConnection$);
  const stats = pc ? [...(await pc.getStats()).values()] : [];
  const out = {};
  for (const [name, { track, peakRms }] of pulls) {
    if (!track) { out[name] = null; continue; }
    const s = stats.find((x) => x.type === "inbound-rtp" && x.trackIdentifier === track.id)
      || {};
    out[name] = {
      packets: s.packetsReceived || 0, bytes: s.bytesReceived || 0,
      energy: s.totalAudioEnergy || 0, level: s.audioLevel || 0,
      concealed: s.totalSamplesReceived ? s.concealedSamples / s.totalSamplesReceived : 1,
      peakRms,
    };
  }
  const turn = pc ? pc.getConfiguration().iceServers.filter((server) => server.credential)
    .flatMap((server) => [].concat(server.urls)) : [];
  return { connection: pc ? pc.connectionState : "none", turn, pulls: out };
};

// The most tracks one pull request (tracks/new with remote tracks) carried.
window.pulledInOneRequest = () => Math.max(0, ...partyTracks.history.entries
  .filter((e) => e.type === "request" && e.endpoint.includes("/tracks/new"))
  .map((e) => (e.body.tracks || []).filter((t) => t.location === "remote").length));

// For a failure report: the last API exchanges.
window.apiHistory = () => partyTracks && partyTracks.history.entries.slice(-8);
