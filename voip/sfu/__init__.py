"""The selective forwarding unit (DESIGN.md §7): Opus RTP forwarded without decoding.

Pure: ``router`` (who receives which track), ``activity`` (speaking and muted from
RFC 6464 levels, the bitrate policer, the delay histogram), ``sdp_text`` (what we check
and change in SDP), ``calls`` (a room's call, the limits), ``fanout`` (one published
track's data path), ``sfu_config``. On aiortc, loaded with the first session:
``forwarding`` (the passthrough hooks) and ``session`` (one participant's peer
connection). ``suppression`` runs a speaker's denoiser off the loop; ``service`` is what
the HTTP API (``resources``) calls; ``wiring`` is for the composition root.
"""
