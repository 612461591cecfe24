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
