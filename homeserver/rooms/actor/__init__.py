"""The room actor machinery: :class:`~.actor.RoomActor` (one per room, its inbox,
group commit, outbox to the global room stream), :class:`~.room_writer.RoomWriter`
(the decisions applied inside the actor's batch), :class:`~.registry.RoomRegistry`
(room ID → actor; creation, waking, hibernation) and the bounds on awake rooms'
memory; ``protocols`` names the collaborators an actor is given.

The rule of this package: the actor is the only writer of its room. Every mutation
enters through the actor's inbox: a local event by ``RoomActor.create_event``, a
remote PDU by ``RoomActor.apply_remote_pdus``, a room joined over federation by
``RoomRegistry.import_room``. Nothing slow (network, remote servers) is awaited
inside the inbox: callers hand over events that are complete.
"""
