"""A room's own SQLite file: :class:`~.store.RoomStore` and the parts it owns (the
schema and its migrations, the connection, the room's metadata, event rows, event
reads and writes, forward and backward extremities, redactions, state groups and
current state, the relations and full-text search indexes, the timestamp lookup).

The rule of this package: it is the only code that touches a room's SQLite file, and
only the room's actor calls it (synchronously, on the reactor thread). It decides
nothing about events: the actor hands it decided contexts to write.
"""
