"""Rooms: every room is its own single-writer actor with its own SQLite file
(DESIGN.md §3-4). Four sub-packages, each with one rule:

- :mod:`~homeserver.rooms.rules`: pure (auth rules, power levels, state resolution,
  history visibility, …); values in, values out; never imports twisted or sqlite3.
- :mod:`~homeserver.rooms.actor`: the only writer of a room (actor, registry, writer,
  memory bounds); local events and remote PDUs enter a room here.
- :mod:`~homeserver.rooms.storage`: the only code that touches a room's SQLite file.
- :mod:`~homeserver.rooms.features`: what the server does with rooms (the domain API
  behind client servlets, /sync and search); reads and writes only through the actor.

Dependencies point one way: features → actor → storage → rules.
"""
