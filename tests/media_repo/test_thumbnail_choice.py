"""media_repo.thumbnail_choice (spec: Client-Server API, Content repository, Thumbnails)."""

from twisted.trial import unittest

from media_repo.thumbnail_choice import Available, choose


def _defaults(w: int, h: int, ctype="image/jpeg") -> list[Available]:
    """The stored default thumbnails of a 16:9 source of w x h (scale sizes capped)."""
    out = [Available(32, 32, "crop", ctype), Available(96, 96, "crop", ctype)]
    for bw, bh in ((320, 240), (640, 480), (800, 600)):
        sw = min(w, bw)
        out.append(Available(sw, min(h, round(sw * h / w)), "scale", ctype))
    return out


class ChooseTests(unittest.TestCase):
    """choose picks the stored thumbnail to serve."""

    def test_crop_smallest_big_enough(self):
        """A 64x64 crop request gets the 96x96 crop; a 32x32 request the 32x32."""
        avail = _defaults(1920, 1080)
        self.assertEqual(choose(avail, 64, 64, "crop"), Available(96, 96, "crop", "image/jpeg"))
        self.assertEqual(choose(avail, 32, 32, "crop"), Available(32, 32, "crop", "image/jpeg"))

    def test_crop_too_big_gets_largest_crop(self):
        """A crop request beyond every crop thumbnail gets the largest crop, not a scale."""
        self.assertEqual(
            choose(_defaults(1920, 1080), 200, 200, "crop"),
            Available(96, 96, "crop", "image/jpeg"),
        )

    def test_crop_aspect_first(self):
        """For crop, the closest aspect ratio wins over the smaller size."""
        avail = [Available(120, 120, "crop", "image/png"), Available(200, 100, "crop", "image/png")]
        self.assertEqual(choose(avail, 100, 50, "crop"), avail[1])
        self.assertEqual(choose(avail, 100, 100, "crop"), avail[0])

    def test_scale_either_side_reaches(self):
        """A 320x240 scale request gets 320x180: its width fills the box."""
        self.assertEqual(
            choose(_defaults(1920, 1080), 320, 240, "scale"),
            Available(320, 180, "scale", "image/jpeg"),
        )

    def test_scale_smallest_big_enough(self):
        """A 500x300 scale request skips 320x180 and gets 640x360."""
        self.assertEqual(
            choose(_defaults(1920, 1080), 500, 300, "scale"),
            Available(640, 360, "scale", "image/jpeg"),
        )

    def test_scale_too_big_gets_largest(self):
        """A 2000x2000 scale request gets the largest, 800x450."""
        self.assertEqual(
            choose(_defaults(1920, 1080), 2000, 2000, "scale"),
            Available(800, 450, "scale", "image/jpeg"),
        )

    def test_other_method_when_none_match(self):
        """With only crop thumbnails stored, a scale request gets one of them."""
        avail = [Available(32, 32, "crop", "image/png"), Available(96, 96, "crop", "image/png")]
        self.assertEqual(choose(avail, 64, 64, "scale"), avail[1])

    def test_webp_filtered_unless_accepted(self):
        """WebP thumbnails are never chosen for a client that does not accept WebP."""
        avail = [Available(96, 96, "crop", "image/webp"), Available(32, 32, "crop", "image/png")]
        self.assertEqual(choose(avail, 64, 64, "crop", accepts_webp=False), avail[1])
        self.assertEqual(choose(avail, 64, 64, "crop", accepts_webp=True), avail[0])
        self.assertIsNone(choose(avail[:1], 64, 64, "crop", accepts_webp=False))

    def test_tie_prefers_webp(self):
        """Between same-size thumbnails, WebP wins when accepted."""
        avail = [Available(96, 96, "crop", "image/jpeg"), Available(96, 96, "crop", "image/webp")]
        self.assertEqual(choose(avail, 96, 96, "crop"), avail[1])
        self.assertEqual(choose(avail, 96, 96, "crop", accepts_webp=False), avail[0])

    def test_empty(self):
        """No thumbnails, no choice."""
        self.assertIsNone(choose([], 32, 32, "crop"))
