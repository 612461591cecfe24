"""Media response headers and Range parsing (media_repo.responses), pure parts."""

from __future__ import annotations

from twisted.trial import unittest

from media_repo.responses import content_disposition, parse_range, served_content_type


class DispositionTests(unittest.TestCase):
    def test_inline_only_for_safe_types(self) -> None:
        """Images (not SVG), audio, video and plain text are inline; the rest attachment."""
        for t in ("image/png", "image/jpeg; foo=bar", "IMAGE/GIF", "video/mp4",
                  "audio/ogg", "text/plain"):
            self.assertEqual(content_disposition(t, None), "inline", t)
        for t in ("image/svg+xml", "text/html", "application/octet-stream",
                  "application/pdf", "text/javascript", ""):
            self.assertEqual(content_disposition(t, None), "attachment", t)

    def test_file_name_encoding(self) -> None:
        """A token goes plain (RFC 6266); anything else as RFC 5987 filename*."""
        self.assertEqual(content_disposition("text/plain", "a.txt"),
                         "inline; filename=a.txt")
        self.assertEqual(content_disposition("x/y", 'a "b";c.txt'),
                         "attachment; filename*=utf-8''a%20%22b%22%3Bc.txt")
        self.assertEqual(content_disposition("x/y", "ünï/x"),
                         "attachment; filename*=utf-8''%C3%BCn%C3%AF%2Fx")

    def test_text_charset(self) -> None:
        """Bare text types get charset=UTF-8; others and explicit charsets stay."""
        self.assertEqual(served_content_type("text/plain"), "text/plain; charset=UTF-8")
        self.assertEqual(served_content_type("text/plain; charset=latin1"),
                         "text/plain; charset=latin1")
        self.assertEqual(served_content_type("image/png"), "image/png")


class RangeTests(unittest.TestCase):
    def test_ranges(self) -> None:
        """One byte range is honoured, several or malformed ones ignored, impossible
        ones refused (False)."""
        self.assertIsNone(parse_range(None, 100))
        self.assertEqual(parse_range("bytes=0-9", 100), (0, 9))
        self.assertEqual(parse_range("bytes=90-", 100), (90, 99))
        self.assertEqual(parse_range("bytes=90-500", 100), (90, 99))
        self.assertEqual(parse_range("bytes=-10", 100), (90, 99))
        self.assertEqual(parse_range("bytes=-500", 100), (0, 99))
        self.assertIsNone(parse_range("bytes=0-1,5-6", 100))
        self.assertIsNone(parse_range("items=0-1", 100))
        self.assertIsNone(parse_range("bytes=-", 100))
        self.assertIs(parse_range("bytes=100-", 100), False)
        self.assertIs(parse_range("bytes=5-2", 100), False)
        self.assertIs(parse_range("bytes=-0", 100), False)
        self.assertIs(parse_range("bytes=0-", 0), False)


class FakeRequest:
    """Just what ThreadedFileProducer uses of a twisted.web request."""

    def __init__(self) -> None:
        from twisted.internet import defer
        self.written: list[bytes] = []
        self.producer = None
        self.finished = False
        self._disconnected = False
        self._finish = defer.Deferred()

    def registerProducer(self, producer, streaming: bool) -> None:
        assert streaming
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def notifyFinish(self):
        return self._finish

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def finish(self) -> None:
        self.finished = True

    def loseConnection(self) -> None:
        self._disconnected = True


async def _inline(fn, *args):
    return fn(*args)


class ThreadedFileProducerTests(unittest.TestCase):
    def test_streams_range_then_finishes(self) -> None:
        """The asked-for range is written in chunks, then the file is closed and the
        request finished."""
        import io
        from media_repo.responses import CHUNK_SIZE, ThreadedFileProducer
        data = bytes(range(256)) * 4000
        f, request = io.BytesIO(data), FakeRequest()
        ThreadedFileProducer(request, f, 10, CHUNK_SIZE + 5, _inline).start()
        self.assertEqual(b"".join(request.written), data[10:10 + CHUNK_SIZE + 5])
        self.assertEqual(len(request.written), 2)
        self.assertTrue(request.finished and f.closed)
        self.assertIsNone(request.producer)

    def test_pause_resume_and_stop(self) -> None:
        """Nothing is read while paused; a stop (client gone) closes the file and
        never finishes the request."""
        import io
        from media_repo.responses import ThreadedFileProducer

        class Pausing(FakeRequest):
            def write(self, data: bytes) -> None:
                super().write(data)
                self.producer.pauseProducing()  # the transport's buffer is full

        data = b"z" * 300_000
        f, request = io.BytesIO(data), Pausing()
        producer = ThreadedFileProducer(request, f, 0, len(data), _inline)
        producer.start()
        self.assertEqual(len(request.written), 1)
        producer.resumeProducing()
        self.assertEqual(len(request.written), 2)
        producer.stopProducing()
        producer.resumeProducing()
        self.assertEqual(len(request.written), 2)
        self.assertTrue(f.closed)
        self.assertFalse(request.finished)
