"""The incremental multipart/mixed reader on plain byte fixtures (no reactor)."""

import unittest

from media_repo.multipart import (
    End, MultipartError, MultipartReader, PartData, PartEnd, PartStart, boundary_of,
    filename_from_disposition,
)

BOUNDARY = "6067d4698f8d40a0a794ea7d7ac61b3e"
B = BOUNDARY.encode()

# as Synapse writes it: a leading CRLF, JSON metadata, then the file
SYNAPSE_STYLE = (b"\r\n--" + B + b"\r\nContent-Type: application/json\r\n\r\n{}"
                 b"\r\n--" + B + b"\r\nContent-Type: text/plain\r\n"
                 b"Content-Disposition: inline; filename=test.txt\r\n\r\n"
                 b"file\r\nwith --lines\r\n--" + B[:-1] + b"x\r\n"
                 b"\r\n--" + B + b"--\r\n")


def read(body: bytes, chunk: int) -> list:
    """All events of ``body`` fed ``chunk`` bytes at a time, data parts merged."""
    reader = MultipartReader(BOUNDARY)
    events = []
    for i in range(0, len(body), chunk):
        events.extend(reader.feed(body[i:i + chunk]))
    reader.close()
    merged: list = []
    for e in events:
        if isinstance(e, PartData) and merged and isinstance(merged[-1], PartData):
            merged[-1] = PartData(merged[-1].data + e.data)
        else:
            merged.append(e)
    return merged


class ReaderTests(unittest.TestCase):
    def test_two_parts_any_chunking(self):
        """Every chunk size (1 byte up to whole) gives the same parts and bytes, so a
        delimiter split across chunks is found and a near-delimiter in the data is not."""
        expected = [
            PartStart({"content-type": "application/json"}), PartData(b"{}"), PartEnd(),
            PartStart({"content-type": "text/plain",
                       "content-disposition": "inline; filename=test.txt"}),
            PartData(b"file\r\nwith --lines\r\n--" + B[:-1] + b"x\r\n"), PartEnd(), End()]
        for chunk in range(1, len(SYNAPSE_STYLE) + 1):
            self.assertEqual(read(SYNAPSE_STYLE, chunk), expected, chunk)

    def test_no_leading_crlf_and_preamble(self):
        """The first delimiter may open the body or follow a preamble; an epilogue is ignored."""
        for prefix in (b"", b"this is a preamble\r\n"):
            body = (prefix + b"--" + B + b"\r\n\r\n{}\r\n--" + B + b"\r\nLocation: "
                    b"https://cdn.example/x\r\n\r\n\r\n--" + B + b"--\r\nepilogue")
            events = read(body, 7)
            self.assertEqual(events, [PartStart({}), PartData(b"{}"), PartEnd(),
                                      PartStart({"location": "https://cdn.example/x"}),
                                      PartEnd(), End()])

    def test_empty_body_part_and_transport_padding(self):
        """Whitespace after a delimiter is allowed; a part may have no bytes at all."""
        body = (b"--" + B + b"  \r\nA: 1\r\n\r\n\r\n--" + B + b"--")
        self.assertEqual(read(body, 3), [PartStart({"a": "1"}), PartEnd(), End()])

    def test_lf_only_is_not_a_line_end(self):
        """A delimiter preceded by a bare LF is data, so the body never closes: an error."""
        body = b"--" + B + b"\r\n\r\ndata\n--" + B + b"--\n"
        reader = MultipartReader(BOUNDARY)
        events = reader.feed(body)
        self.assertNotIn(End(), events)
        with self.assertRaises(MultipartError):
            reader.close()

    def test_garbage(self):
        """No boundary, junk after a delimiter, bad header lines, truncation → errors."""
        cases = [
            b"x" * 100_000,                                   # no delimiter at all
            b"--" + B + b"junk\r\n\r\n",                      # delimiter glued to text
            b"--" + B + b"\r\nno colon here\r\n\r\n",         # malformed header
            b"--" + B + b"\r\nA: 1\r\n\r\nbody without end",  # truncated
        ]
        for body in cases:
            reader = MultipartReader(BOUNDARY)
            with self.assertRaises(MultipartError, msg=body[:40]):
                reader.feed(body)
                reader.close()

    def test_headers_too_long(self):
        """Part headers without an end are refused once over the limit."""
        reader = MultipartReader(BOUNDARY, max_header_bytes=100)
        with self.assertRaises(MultipartError):
            reader.feed(b"--" + B + b"\r\nX: " + b"a" * 200)

    def test_invalid_boundary(self):
        """A boundary the RFC does not allow is refused up front."""
        for bad in ("", "a" * 71, "bad\r\nboundary", "trailing "):
            with self.assertRaises(MultipartError):
                MultipartReader(bad)


class HeaderValueTests(unittest.TestCase):
    def test_boundary_of(self):
        """The boundary of multipart/mixed, quoted or not; anything else is an error."""
        self.assertEqual(boundary_of("multipart/mixed; boundary=abc"), "abc")
        self.assertEqual(boundary_of('Multipart/Mixed; charset=x; boundary="a b;c"'), "a b;c")
        for bad in (None, "", "text/plain", "multipart/mixed", "multipart/form-data; boundary=x"):
            with self.assertRaises(MultipartError):
                boundary_of(bad)

    def test_filename_from_disposition(self):
        """filename* (UTF-8, percent-encoded) wins over filename; none gives None."""
        self.assertEqual(filename_from_disposition("inline; filename=a.txt"), "a.txt")
        self.assertEqual(filename_from_disposition('attachment; filename="a b.txt"'), "a b.txt")
        self.assertEqual(filename_from_disposition(
            "attachment; filename=x; filename*=utf-8''%C3%A9t%C3%A9.png"), "été.png")
        self.assertIsNone(filename_from_disposition("inline"))
        self.assertIsNone(filename_from_disposition(None))
