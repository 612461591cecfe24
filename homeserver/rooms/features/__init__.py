"""What the server does with rooms, for the client API, /sync and search:
:class:`~.service.RoomService` (creating rooms, sending, state, redaction) and its
parts (membership, history, history visibility, client event format, directory,
stats, upgrades, transaction log), plus relations and threads, server-side search,
the space hierarchy and timestamp lookup.

The rule of this package: features reach a room only through its actor
(``RoomRegistry.get`` → ``RoomActor`` reads and ``create_event``); they never open a
room's file nor write its events themselves, and apply the pure rules of
:mod:`homeserver.rooms.rules` to what they read.
"""
