"""The pure rules of a room: authorization rules, power levels, state resolution (v1,
v2, v2.1), history visibility, the events of a new room, event filters, pagination
tokens and client transaction keys.

The rule of this package: pure. Values in, values out; no module here imports twisted
or sqlite3 or anything that does (``tests/rooms/rules/test_purity.py`` checks), and
nothing here imports the other sub-packages of :mod:`homeserver.rooms`. The same
rules judge a local event and a remote PDU.
"""
