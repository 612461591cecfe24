"""The SDP text the SFU reads and writes around aiortc (pure; no aiortc import, so the
server loads aiortc and PyAV only when the first call starts).

What we check in a client's SDP before handing it to aiortc (its media sections: kind,
port, mid, direction) and what we change in ours before the client sees it (the
public IP, the bitrate asked of Opus, closed transceivers rejected).
"""

from __future__ import annotations

import dataclasses
import re


class SdpError(Exception):
    """An SDP we cannot use (unparsable, wrong type or state, unknown mid)."""


@dataclasses.dataclass(frozen=True)
class MediaSection:
    kind: str
    port: int
    mid: str | None
    direction: str


_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_LINE = re.compile(r"^[a-z]=")
_M_LINE = re.compile(r"^m=(\w+) (\d+)(?:/\d+)? \S+( \S+)+$")


def media_sections(text: str) -> list[MediaSection]:
    """The media sections of an SDP (RFC 8866 §5.14), checked as far as we rely on it;
    raises SdpError. aiortc parses the whole SDP again when it is applied."""
    lines = text.replace("\r\n", "\n").rstrip("\n").split("\n")
    if not lines or lines[0] != "v=0" or not all(_LINE.match(line) for line in lines):
        raise SdpError("unparsable SDP: it must start with v=0 and hold only x=… lines")
    sections: list[dict] = []
    for line in lines:
        if line.startswith("m="):
            m = _M_LINE.match(line)
            if m is None:
                raise SdpError(f"unparsable SDP: bad media line {line[:60]!r}")
            sections.append({"kind": m.group(1), "port": int(m.group(2)), "mid": None,
                             "direction": "sendrecv"})
        elif sections and line.startswith("a=mid:"):
            sections[-1]["mid"] = line[6:].strip() or None
        elif sections and line[2:] in _DIRECTIONS:
            sections[-1]["direction"] = line[2:]
    if not sections:
        raise SdpError("the SDP has no media section")
    return [MediaSection(**section) for section in sections]


def parse_offer_mids(text: str) -> dict[str, tuple[str, str]]:
    """mid → (kind, direction) of each media section of an SDP; raises SdpError."""
    return {m.mid: (m.kind, m.direction) for m in media_sections(text) if m.mid is not None}


def rejected_mids(text: str) -> set[str]:
    """The mids of media sections an SDP rejects (port 0: a stopped transceiver)."""
    return {m.mid for m in media_sections(text) if m.port == 0 and m.mid}


def mask_rejected(sdp_text: str, mids: set[str]) -> str:
    """``sdp_text`` with the media sections of ``mids`` rejected: port 0 and out of
    the BUNDLE group (RFC 8843 §7.3.3). aiortc knows no stopped transceivers and
    would keep offering and answering them as live, which browsers refuse."""
    if not mids:
        return sdp_text
    sections = re.split(r"(?=^m=)", sdp_text, flags=re.M)
    out = []
    for section in sections:
        mid = re.search(r"^a=mid:(\S+)", section, flags=re.M)
        if section.startswith("m=") and mid and mid.group(1) in mids:
            section = re.sub(r"^(m=\S+) \d+ ", r"\1 0 ", section, count=1)
        elif not section.startswith("m="):
            section = re.sub(r"^a=group:BUNDLE ([^\r\n]*)", lambda g: "a=group:BUNDLE " + " ".join(
                m for m in g.group(1).split() if m not in mids), section, flags=re.M)
        out.append(section)
    return "".join(out)


_HOST_CANDIDATE = re.compile(r"^(a=candidate:\S+ \d+ \S+ \d+ )(\S+)( \d+ typ host\b.*)$")
_OPUS_RTPMAP = re.compile(r"^a=rtpmap:(\d+) opus/48000", re.I)


def announce(sdp_text: str, *, public_ip: str | None, max_bitrate: int,
             max_video_bitrate: int | None = None) -> str:
    """Our SDP as sent to the client: host candidates (and the connection address)
    carry ``public_ip`` when one is configured (1:1 NAT), each Opus section is asked
    to stay within ``max_bitrate`` bits/s (``maxaveragebitrate``, RFC 7587 §6.1;
    ``b=TIAS`` after ``c=``, RFC 3890 and the RFC 4566 line order) and each video
    section within ``max_video_bitrate`` (``b=TIAS`` and, for older browsers,
    ``b=AS`` in kbit/s)."""
    lines = sdp_text.split("\r\n")
    out: list[str] = []
    audio = video = False
    opus_types: set[str] = set()
    for line in lines:
        if line.startswith("m="):
            audio = line.startswith("m=audio ")
            video = line.startswith("m=video ") and max_video_bitrate is not None
            opus_types = set()
        if public_ip is not None:
            line = _HOST_CANDIDATE.sub(lambda m: m.group(1) + public_ip + m.group(3), line)
            if line.startswith("c=IN IP4 ") and line != "c=IN IP4 0.0.0.0" \
                    and ":" not in public_ip:
                line = f"c=IN IP4 {public_ip}"
        rtpmap = _OPUS_RTPMAP.match(line)
        if rtpmap:
            opus_types.add(rtpmap.group(1))
        if line.startswith("a=fmtp:") and line[7:].split(" ", 1)[0] in opus_types:
            line += f";maxaveragebitrate={max_bitrate}"
        out.append(line)
        if audio and line.startswith("c="):
            out.append(f"b=TIAS:{max_bitrate}")
        if video and line.startswith("c="):
            out.append(f"b=AS:{max(1, max_video_bitrate // 1000)}")
            out.append(f"b=TIAS:{max_video_bitrate}")
    return "\r\n".join(out)


_SIMULCAST_SEND = re.compile(r"^a=simulcast:send (\S+)", re.M)


def simulcast_rids(offer_section: str) -> list[str]:
    """The rids a media section of an offer sends as simulcast (RFC 8853 §5.1; the
    ``~`` of a paused stream dropped, alternatives flattened)."""
    m = _SIMULCAST_SEND.search(offer_section)
    if m is None:
        return []
    return [rid.lstrip("~") for group in m.group(1).split(";") for rid in group.split(",")]


def accept_simulcast(offer: str, answer: str) -> str:
    """``answer`` receiving the simulcast streams ``offer`` sends: for each offered
    section with ``a=simulcast:send``, the answer's section of the same mid gets
    ``a=rid:<rid> recv`` and ``a=simulcast:recv`` (RFC 8853 §5.3). aiortc ignores
    these attributes, and a browser sends one stream only without them."""
    offered: dict[str, list[str]] = {}
    for section in re.split(r"(?=^m=)", offer.replace("\r\n", "\n"), flags=re.M):
        mid = re.search(r"^a=mid:(\S+)", section, flags=re.M)
        rids = simulcast_rids(section)
        if mid and rids:
            offered[mid.group(1)] = rids
    if not offered:
        return answer
    out = []
    for section in re.split(r"(?=^m=)", answer, flags=re.M):
        mid = re.search(r"^a=mid:(\S+)", section, flags=re.M)
        if section.startswith("m=") and mid and mid.group(1) in offered:
            rids = offered[mid.group(1)]
            extra = "".join(f"a=rid:{rid} recv\r\n" for rid in rids)
            extra += f"a=simulcast:recv {';'.join(rids)}\r\n"
            section = section if section.endswith("\r\n") else section + "\r\n"
            section += extra
        out.append(section)
    return "".join(out)
