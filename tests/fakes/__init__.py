"""In-memory fakes of the narrow collaborators (STYLE.md 12: fakes over Mock)."""

from tests.fakes.room_stream import FakeRoomStreamWriter, RecordingListener

__all__ = ["FakeRoomStreamWriter", "RecordingListener"]
