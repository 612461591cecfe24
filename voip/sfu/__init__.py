"""The selective forwarding unit (DESIGN.md §7): Opus RTP forwarded without decoding.

``router`` (pure) decides who receives which track; ``activity`` (pure) tells speaking
and muted from RFC 6464 audio levels; ``forwarding`` hooks aiortc so encoded packets
pass through; ``session`` is one participant's peer connection; ``calls`` holds a room's
call and the limits; ``service`` is what the HTTP API (``resources``) calls.
"""
