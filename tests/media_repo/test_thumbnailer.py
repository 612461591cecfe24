"""media_repo.thumbnailer (spec: Client-Server API, Content repository, Thumbnails).

Fixtures are small images drawn with Pillow into a per-test temp dir.
"""

from __future__ import annotations

import io
import os
import struct
import zlib

from PIL import Image
from twisted.trial import unittest

from media_repo.thumbnailer import (
    DEFAULT_SIZES,
    MAX_ANIMATED_FRAMES,
    THUMBNAILABLE_TYPES,
    ImageInfo,
    ThumbnailError,
    output_type_for,
    probe,
    render,
    render_all,
)

LIMIT = 32_000_000  # Synapse's default max_image_pixels


def _decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _animated(path: str, frames: int, size=(120, 60), fmt="GIF", loop=0, duration=40):
    """An animation whose frames differ (so encoders cannot merge them)."""
    images = [
        Image.new("RGB", size, ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256))
        for i in range(frames)
    ]
    options = {"save_all": True, "append_images": images[1:], "duration": duration}
    if loop is not None:
        options["loop"] = loop
    images[0].save(path, fmt, **options)


class _Fixtures(unittest.TestCase):
    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def image(self, name: str, size, mode="RGB", color=(200, 30, 30), **save) -> str:
        p = self.path(name)
        Image.new(mode, size, color).save(p, **save)
        return p

    def write(self, name: str, data: bytes) -> str:
        p = self.path(name)
        with open(p, "wb") as f:
            f.write(data)
        return p


class ProbeTests(_Fixtures):
    """probe reads type, size and animation from the header."""

    def test_jpeg(self):
        """A JPEG's size and type are reported, not animated."""
        p = self.image("a.jpg", (640, 480))
        self.assertEqual(
            probe(p, max_pixels=LIMIT), ImageInfo(640, 480, "image/jpeg", False)
        )

    def test_each_supported_type(self):
        """PNG, GIF and WebP are recognised by content, whatever the file is called."""
        for fmt, ctype in (("PNG", "image/png"), ("GIF", "image/gif"), ("WEBP", "image/webp")):
            p = self.image(f"x-{fmt}", (30, 20), format=fmt)
            self.assertEqual(probe(p, max_pixels=LIMIT).content_type, ctype)

    def test_animated_gif_and_webp(self):
        """Multi-frame GIF and WebP are reported as animated."""
        _animated(self.path("a.gif"), 3)
        _animated(self.path("a.webp"), 3, fmt="WEBP")
        self.assertTrue(probe(self.path("a.gif"), max_pixels=LIMIT).animated)
        self.assertTrue(probe(self.path("a.webp"), max_pixels=LIMIT).animated)

    def test_mpo_is_a_still_jpeg(self):
        """A phone camera's MPO (JPEG plus a second picture) is a still image/jpeg."""
        p = self.path("m.jpg")
        first, second = Image.new("RGB", (300, 200), (255, 0, 0)), Image.new("RGB", (300, 200))
        first.save(p, "MPO", save_all=True, append_images=[second])
        self.assertEqual(probe(p, max_pixels=LIMIT), ImageInfo(300, 200, "image/jpeg", False))
        r = render(p, 96, 96, "crop", "image/webp", max_pixels=LIMIT, animated=True)
        out = _decode(r.data)
        self.assertFalse(getattr(out, "is_animated", False))
        self.assertGreater(out.convert("RGB").getpixel((48, 48))[0], 200)

    def test_exif_orientation_swaps_reported_size(self):
        """A JPEG stored 400x200 with orientation 6 is reported upright as 200x400."""
        p = _oriented_jpeg(self.path("o.jpg"), 6)
        self.assertEqual(probe(p, max_pixels=LIMIT), ImageInfo(200, 400, "image/jpeg", False))

    def test_header_only(self):
        """A PNG truncated after its header still probes: no pixel data is decoded."""
        data = _noise_png(300, 300)
        p = self.write("t.png", data[: len(data) // 2])
        self.assertEqual(probe(p, max_pixels=LIMIT), ImageInfo(300, 300, "image/png", False))

    def test_over_pixel_limit(self):
        """An image with more pixels than max_pixels is refused."""
        p = self.image("big.png", (100, 100), format="PNG")
        self.assertRaises(ThumbnailError, probe, p, max_pixels=9_999)
        self.assertEqual(probe(p, max_pixels=10_000).width, 100)

    def test_rejects_non_images_svg_and_bmp(self):
        """Text, SVG and BMP (readable by Pillow but not allowed) raise ThumbnailError."""
        text = self.write("t.txt", b"hello, this is not an image at all\n" * 10)
        svg = self.write(
            "s.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
            b'<rect width="10" height="10"/></svg>',
        )
        bmp = self.image("b.bmp", (10, 10), format="BMP")
        empty = self.write("e", b"")
        for p in (text, svg, bmp, empty):
            self.assertRaises(ThumbnailError, probe, p, max_pixels=LIMIT)

    def test_missing_file(self):
        """A path that does not exist is a ThumbnailError too."""
        self.assertRaises(ThumbnailError, probe, self.path("nope"), max_pixels=LIMIT)


class BombTests(_Fixtures):
    """Headers claiming huge sizes never get decoded."""

    def test_png_bomb_under_our_limit(self):
        """A tiny PNG whose IHDR claims 100000x100000 is refused by probe and render."""
        p = self.write("bomb.png", _png_claiming(100_000, 100_000))
        self.assertRaises(ThumbnailError, probe, p, max_pixels=LIMIT)
        self.assertRaises(
            ThumbnailError, render, p, 32, 32, "crop", "image/png", max_pixels=LIMIT
        )

    def test_pillow_bomb_error_becomes_thumbnail_error(self):
        """With our limit lifted, Pillow's DecompressionBombError still surfaces as ours."""
        p = self.write("bomb.png", _png_claiming(100_000, 100_000))
        self.assertRaises(ThumbnailError, probe, p, max_pixels=10**12)

    def test_gif_logical_screen_bomb(self):
        """A GIF whose logical screen says 65535x65535 is refused."""
        p = self.image("s.gif", (4, 4), mode="P", color=1, format="GIF")
        with open(p, "r+b") as f:
            f.seek(6)
            f.write(struct.pack("<HH", 65535, 65535))
        self.assertRaises(ThumbnailError, probe, p, max_pixels=LIMIT)

    def test_global_limit_untouched(self):
        """probe with a small limit leaves Pillow's global MAX_IMAGE_PIXELS alone."""
        before = Image.MAX_IMAGE_PIXELS
        p = self.image("a.png", (20, 20), format="PNG")
        self.assertRaises(ThumbnailError, probe, p, max_pixels=10)
        self.assertEqual(Image.MAX_IMAGE_PIXELS, before)


class SizeTests(_Fixtures):
    """Output dimensions for crop and scale."""

    def size_of(self, src_size, w, h, method, fmt="JPEG"):
        p = self.image(f"s-{src_size[0]}x{src_size[1]}.{fmt.lower()}", src_size, format=fmt)
        r = render(p, w, h, method, "image/png", max_pixels=LIMIT)
        self.assertEqual(_decode(r.data).size, (r.width, r.height))
        return r.width, r.height

    def test_scale_landscape(self):
        """A 1000x500 image scaled into 320x240 is 320x160 (width binds)."""
        self.assertEqual(self.size_of((1000, 500), 320, 240, "scale"), (320, 160))

    def test_scale_portrait(self):
        """A 300x600 image scaled into 320x240 is 120x240 (height binds)."""
        self.assertEqual(self.size_of((300, 600), 320, 240, "scale"), (120, 240))

    def test_scale_same_aspect(self):
        """A 4:3 image scaled into 640x480 fills it exactly."""
        self.assertEqual(self.size_of((1600, 1200), 640, 480, "scale"), (640, 480))

    def test_scale_never_upscales(self):
        """A 50x40 image scaled into 320x240 stays 50x40."""
        self.assertEqual(self.size_of((50, 40), 320, 240, "scale"), (50, 40))

    def test_scale_partly_smaller(self):
        """A 100x1000 image into 800x600: only the height binds, width is shrunk with it."""
        self.assertEqual(self.size_of((100, 1000), 800, 600, "scale"), (60, 600))

    def test_crop_exact_size(self):
        """Crop gives exactly the requested size for landscape and portrait sources."""
        self.assertEqual(self.size_of((1000, 500), 96, 96, "crop"), (96, 96))
        self.assertEqual(self.size_of((300, 600), 96, 96, "crop"), (96, 96))
        self.assertEqual(self.size_of((1000, 500), 320, 240, "crop"), (320, 240))

    def test_crop_thin_source(self):
        """A very wide source is still cropped to the requested box."""
        self.assertEqual(self.size_of((3000, 10), 8, 8, "crop"), (8, 8))
        self.assertEqual(self.size_of((1000, 333), 96, 96, "crop"), (96, 96))

    def test_crop_never_upscales(self):
        """A 50x40 source cropped for 96x96 is its largest centred square, 40x40."""
        self.assertEqual(self.size_of((50, 40), 96, 96, "crop"), (40, 40))

    def test_crop_small_keeps_requested_aspect(self):
        """A 60x200 source for a 320x240 crop is 60x45: no upscaling, 4:3 kept."""
        self.assertEqual(self.size_of((60, 200), 320, 240, "crop"), (60, 45))

    def test_crop_one_side_short(self):
        """A 1000x20 source for 96x96 is cut to 20x20 at its own scale."""
        self.assertEqual(self.size_of((1000, 20), 96, 96, "crop", fmt="PNG"), (20, 20))

    def test_default_sizes(self):
        """Every default size of a 1600x1200 JPEG has the expected dimensions."""
        expected = [(32, 32), (96, 96), (320, 240), (640, 480), (800, 600)]
        got = [self.size_of((1600, 1200), w, h, m) for w, h, m in DEFAULT_SIZES]
        self.assertEqual(got, expected)

    def test_crop_keeps_centre(self):
        """A crop of a wide image keeps its middle and cuts its sides."""
        img = Image.new("RGB", (400, 100), (255, 0, 0))
        img.paste((0, 255, 0), (100, 0, 300, 100))  # green middle half
        p = self.path("c.png")
        img.save(p)
        out = _decode(render(p, 50, 50, "crop", "image/png", max_pixels=LIMIT).data)
        for xy in ((0, 0), (49, 49), (0, 49), (25, 25)):
            r, g, b = out.convert("RGB").getpixel(xy)
            self.assertTrue(g > 200 and r < 60, (xy, (r, g, b)))

    def test_bad_arguments(self):
        """An unknown method, output type or a zero size is a ValueError (caller's bug)."""
        p = self.image("a.png", (10, 10), format="PNG")
        self.assertRaises(ValueError, render, p, 10, 10, "stretch", "image/png", max_pixels=LIMIT)
        self.assertRaises(ValueError, render, p, 10, 10, "crop", "image/bmp", max_pixels=LIMIT)
        self.assertRaises(ValueError, render, p, 0, 10, "crop", "image/png", max_pixels=LIMIT)


class RenderAllTests(_Fixtures):
    """render_all makes every size from one decode, as render would one by one."""

    def test_matches_render(self):
        """Each default size from render_all has render's dimensions and type."""
        p = self.image("big.jpg", (1600, 1200))
        together = render_all(p, DEFAULT_SIZES, "image/webp", max_pixels=LIMIT)
        alone = [render(p, w, h, m, "image/webp", max_pixels=LIMIT) for w, h, m in DEFAULT_SIZES]
        self.assertEqual(
            [(r.width, r.height, r.content_type) for r in together],
            [(r.width, r.height, r.content_type) for r in alone],
        )
        for r in together:
            self.assertEqual(_decode(r.data).size, (r.width, r.height))

    def test_orientation_and_small_source(self):
        """render_all honours EXIF orientation and never upscales."""
        p = _oriented_jpeg(self.path("o.jpg"), 6)  # upright 200x400
        sizes = [(r.width, r.height) for r in render_all(p, DEFAULT_SIZES, "image/png", max_pixels=LIMIT)]
        self.assertEqual(sizes, [(32, 32), (96, 96), (120, 240), (200, 400), (200, 400)])

    def test_errors(self):
        """Bad input raises ThumbnailError, a bad size list ValueError, none gives []."""
        data = _noise_png(300, 300)
        p = self.write("t.png", data[: len(data) // 2])
        self.assertRaises(ThumbnailError, render_all, p, DEFAULT_SIZES, "image/png", max_pixels=LIMIT)
        self.assertRaises(
            ValueError, render_all, p, [(32, 32, "zoom")], "image/png", max_pixels=LIMIT
        )
        self.assertEqual(render_all(p, [], "image/png", max_pixels=LIMIT), [])


class OrientationTests(_Fixtures):
    """EXIF orientation is applied before sizing."""

    def test_orientation_6_swaps_dimensions(self):
        """A 400x200 JPEG with orientation 6 scales as a 200x400 portrait."""
        p = _oriented_jpeg(self.path("o.jpg"), 6)
        r = render(p, 320, 240, "scale", "image/jpeg", max_pixels=LIMIT)
        self.assertEqual((r.width, r.height), (120, 240))
        self.assertEqual(_decode(r.data).size, (120, 240))

    def test_orientation_6_rotates_content(self):
        """Orientation 6 means rotate 90 degrees clockwise: stored left half ends on top."""
        p = _oriented_jpeg(self.path("o.jpg"), 6)
        out = _decode(render(p, 100, 200, "scale", "image/png", max_pixels=LIMIT).data)
        self.assertEqual(out.size, (100, 200))
        top, bottom = out.getpixel((50, 20)), out.getpixel((50, 180))
        self.assertGreater(top[0], 200)  # red
        self.assertGreater(bottom[2], 200)  # blue

    def test_orientation_crop(self):
        """Orientation 8 with a non-square crop gives the requested upright size."""
        p = _oriented_jpeg(self.path("o.jpg"), 8)
        r = render(p, 60, 90, "crop", "image/jpeg", max_pixels=LIMIT)
        self.assertEqual(_decode(r.data).size, (60, 90))

    def test_bad_exif_ignored(self):
        """Garbage in the EXIF block costs only the orientation, not the thumbnail."""
        p = self.path("x.jpg")
        Image.new("RGB", (400, 200), (1, 2, 3)).save(p, exif=b"Exif\x00\x00garbage!!")
        self.assertEqual(probe(p, max_pixels=LIMIT).width, 400)
        r = render(p, 100, 100, "scale", "image/jpeg", max_pixels=LIMIT)
        self.assertEqual((r.width, r.height), (100, 50))


class ModeTests(_Fixtures):
    """Every common pixel mode thumbnails without crashing and keeps what matters."""

    def test_png_transparency_kept(self):
        """Transparent pixels stay transparent in PNG and WebP thumbnails."""
        img = Image.new("RGBA", (200, 200), (0, 0, 255, 255))
        img.paste((0, 0, 0, 0), (0, 0, 200, 100))  # top half transparent
        p = self.path("t.png")
        img.save(p)
        for ctype in ("image/png", "image/webp"):
            out = _decode(render(p, 50, 50, "scale", ctype, max_pixels=LIMIT).data)
            self.assertIn("A", out.getbands(), ctype)
            self.assertEqual(out.convert("RGBA").getpixel((25, 5))[3], 0, ctype)
            self.assertEqual(out.convert("RGBA").getpixel((25, 45))[3], 255, ctype)

    def test_palette_transparency_kept(self):
        """A palette GIF with a transparent index becomes a PNG with alpha."""
        img = Image.new("P", (40, 40), 0)
        img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
        img.paste(1, (0, 0, 40, 20))
        p = self.path("p.gif")
        img.save(p, transparency=1)
        out = _decode(render(p, 20, 20, "scale", "image/png", max_pixels=LIMIT).data)
        rgba = out.convert("RGBA")
        self.assertEqual(rgba.getpixel((10, 2))[3], 0)
        self.assertEqual(rgba.getpixel((10, 17))[:3], (255, 0, 0))

    def test_transparency_to_jpeg_on_white(self):
        """Transparent areas become white, not black, in a JPEG thumbnail."""
        p = self.image("t.png", (100, 100), mode="RGBA", color=(0, 0, 0, 0), format="PNG")
        out = _decode(render(p, 50, 50, "scale", "image/jpeg", max_pixels=LIMIT).data)
        self.assertGreater(min(out.getpixel((25, 25))), 240)

    def test_cmyk_jpeg(self):
        """A CMYK JPEG thumbnails to JPEG, PNG and WebP with the right colour."""
        p = self.image("c.jpg", (300, 200), mode="CMYK", color=(0, 255, 255, 0), format="JPEG")
        for ctype in ("image/jpeg", "image/png", "image/webp"):
            r = render(p, 96, 96, "crop", ctype, max_pixels=LIMIT)
            px = _decode(r.data).convert("RGB").getpixel((48, 48))
            self.assertTrue(px[0] > 200 and px[1] < 60 and px[2] < 60, (ctype, px))

    def test_sixteen_bit_grey_scaled_not_clipped(self):
        """A 16-bit grey PNG at 40000/65535 becomes grey ~156, not white."""
        p = self.image("g.png", (64, 64), mode="I;16", color=40000, format="PNG")
        out = _decode(render(p, 32, 32, "scale", "image/png", max_pixels=LIMIT).data)
        value = out.convert("L").getpixel((16, 16))
        self.assertTrue(150 <= value <= 160, value)

    def test_other_modes(self):
        """1-bit, L, LA, P and RGB PNGs all give a thumbnail in every output type."""
        sources = [
            self.image("one.png", (64, 48), mode="1", color=1, format="PNG"),
            self.image("l.png", (64, 48), mode="L", color=128, format="PNG"),
            self.image("la.png", (64, 48), mode="LA", color=(128, 100), format="PNG"),
            self.image("p.png", (64, 48), mode="P", color=3, format="PNG"),
            self.image("rgb.webp", (64, 48), format="WEBP"),
        ]
        for src in sources:
            for ctype in ("image/jpeg", "image/png", "image/webp", "image/gif"):
                r = render(src, 32, 32, "crop", ctype, max_pixels=LIMIT)
                self.assertEqual(_decode(r.data).size, (32, 32), (src, ctype))
                self.assertEqual(r.content_type, ctype)


class BrokenInputTests(_Fixtures):
    """Corrupt files raise ThumbnailError, never another exception."""

    def test_truncated_png(self):
        """A PNG cut in half probes but fails to render with ThumbnailError."""
        data = _noise_png(300, 300)
        p = self.write("t.png", data[: len(data) // 2])
        self.assertRaises(
            ThumbnailError, render, p, 32, 32, "crop", "image/png", max_pixels=LIMIT
        )

    def test_truncated_jpeg(self):
        """A JPEG cut short fails with ThumbnailError."""
        buf = io.BytesIO()
        Image.effect_noise((400, 400), 80).convert("RGB").save(buf, "JPEG")
        p = self.write("t.jpg", buf.getvalue()[:2000])
        self.assertRaises(
            ThumbnailError, render, p, 96, 96, "crop", "image/jpeg", max_pixels=LIMIT
        )

    def test_corrupt_png_crc(self):
        """A PNG with a flipped byte in its pixel data fails with ThumbnailError."""
        data = bytearray(_noise_png(100, 100))
        data[len(data) // 2] ^= 0xFF
        p = self.write("c.png", bytes(data))
        self.assertRaises(
            ThumbnailError, render, p, 32, 32, "scale", "image/png", max_pixels=LIMIT
        )

    def test_non_image_render(self):
        """render of a text file or an SVG raises ThumbnailError."""
        p = self.write("t.txt", b"\x00\x01 definitely not pixels")
        s = self.write("s.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>')
        for path in (p, s):
            self.assertRaises(
                ThumbnailError, render, path, 32, 32, "crop", "image/png", max_pixels=LIMIT
            )


class AnimationTests(_Fixtures):
    """Animated sources give animated thumbnails only when asked and possible."""

    def test_gif_to_animated_webp(self):
        """A 10-frame GIF gives a 10-frame WebP with its durations and loop."""
        src = self.path("a.gif")
        _animated(src, 10, size=(200, 100), duration=70, loop=0)
        r = render(src, 96, 96, "crop", "image/webp", max_pixels=LIMIT, animated=True)
        out = Image.open(io.BytesIO(r.data))
        self.assertEqual((out.format, out.n_frames, out.size), ("WEBP", 10, (96, 96)))
        self.assertEqual(out.info["loop"], 0)
        out.seek(3)
        out.load()  # WebP sets a frame's duration when it is decoded
        self.assertEqual(out.info["duration"], 70)

    def test_animated_false_gives_still(self):
        """animated=False gives a single-frame thumbnail of an animated GIF."""
        src = self.path("a.gif")
        _animated(src, 10)
        for ctype in ("image/webp", "image/gif", "image/png"):
            r = render(src, 32, 32, "crop", ctype, max_pixels=LIMIT)
            self.assertFalse(getattr(_decode(r.data), "is_animated", False), ctype)

    def test_animated_to_static_type_gives_still(self):
        """animated=True with a PNG or JPEG output gives the first frame."""
        src = self.path("a.gif")
        _animated(src, 5)
        r = render(src, 32, 32, "crop", "image/png", max_pixels=LIMIT, animated=True)
        out = _decode(r.data)
        self.assertFalse(getattr(out, "is_animated", False))
        self.assertEqual(out.convert("RGB").getpixel((5, 5)), (0, 0, 0))  # frame 0 colour

    def test_gif_to_animated_gif(self):
        """Without WebP, an animated GIF thumbnail keeps frames, durations and loop."""
        src = self.path("a.gif")
        _animated(src, 6, duration=50, loop=3)
        r = render(src, 320, 240, "scale", "image/gif", max_pixels=LIMIT, animated=True)
        out = Image.open(io.BytesIO(r.data))
        self.assertEqual((out.n_frames, out.size), (6, (120, 60)))
        self.assertEqual(out.info["loop"], 3)
        self.assertEqual(out.info["duration"], 50)

    def test_play_once_stays_once(self):
        """A GIF with no loop extension (plays once) becomes a WebP with loop=1."""
        src = self.path("a.gif")
        _animated(src, 4, loop=None)
        r = render(src, 32, 32, "crop", "image/webp", max_pixels=LIMIT, animated=True)
        self.assertEqual(Image.open(io.BytesIO(r.data)).info["loop"], 1)

    def test_apng_source(self):
        """An animated PNG probes as animated and gives an animated WebP."""
        src = self.path("a.png")
        _animated(src, 4, size=(200, 100), fmt="PNG")
        self.assertEqual(probe(src, max_pixels=LIMIT), ImageInfo(200, 100, "image/png", True))
        r = render(src, 96, 96, "crop", "image/webp", max_pixels=LIMIT, animated=True)
        self.assertEqual(Image.open(io.BytesIO(r.data)).n_frames, 4)

    def test_animated_webp_source(self):
        """An animated WebP source gives an animated WebP thumbnail."""
        src = self.path("a.webp")
        _animated(src, 5, size=(200, 100), fmt="WEBP")
        r = render(src, 96, 96, "crop", "image/webp", max_pixels=LIMIT, animated=True)
        out = Image.open(io.BytesIO(r.data))
        self.assertEqual((out.n_frames, out.size), (5, (96, 96)))

    def test_frame_cap(self):
        """Frames past MAX_ANIMATED_FRAMES are dropped."""
        src = self.path("long.gif")
        _animated(src, MAX_ANIMATED_FRAMES + 20, size=(16, 16))
        r = render(src, 8, 8, "crop", "image/webp", max_pixels=LIMIT, animated=True)
        self.assertEqual(Image.open(io.BytesIO(r.data)).n_frames, MAX_ANIMATED_FRAMES)

    def test_pixel_budget_across_frames(self):
        """The pixel limit counts every decoded frame: 120x60x10 under a 30000 limit keeps 4."""
        src = self.path("a.gif")
        _animated(src, 10)
        r = render(src, 32, 32, "crop", "image/webp", max_pixels=30_000, animated=True)
        self.assertEqual(Image.open(io.BytesIO(r.data)).n_frames, 4)

    def test_still_source_with_animated_flag(self):
        """animated=True on a still JPEG behaves as animated=False."""
        p = self.image("s.jpg", (100, 100))
        r = render(p, 32, 32, "crop", "image/webp", max_pixels=LIMIT, animated=True)
        self.assertFalse(getattr(_decode(r.data), "is_animated", False))


class OutputTypeTests(unittest.TestCase):
    """output_type_for picks the thumbnail's content type."""

    def test_webp_when_accepted(self):
        """Every source gives WebP when the client accepts it, still or animated."""
        for source in THUMBNAILABLE_TYPES:
            for animated in (False, True):
                self.assertEqual(output_type_for(source, animated, True), "image/webp")

    def test_without_webp(self):
        """Without WebP: JPEG from JPEG, PNG from PNG, GIF and WebP; GIF when animated."""
        self.assertEqual(output_type_for("image/jpeg", False, False), "image/jpeg")
        self.assertEqual(output_type_for("image/jpg", False, False), "image/jpeg")
        self.assertEqual(output_type_for("image/png", False, False), "image/png")
        self.assertEqual(output_type_for("image/gif", False, False), "image/png")
        self.assertEqual(output_type_for("image/webp", False, False), "image/png")
        self.assertEqual(output_type_for("image/gif", True, False), "image/gif")
        self.assertEqual(output_type_for("image/webp", True, False), "image/png")

    def test_unsupported_source(self):
        """SVG and other types raise ThumbnailError."""
        for source in ("image/svg+xml", "image/bmp", "application/pdf", "video/mp4"):
            self.assertRaises(ThumbnailError, output_type_for, source, False, True)

    def test_svg_never_thumbnailable(self):
        """SVG is not among the thumbnailable types."""
        self.assertNotIn("image/svg+xml", THUMBNAILABLE_TYPES)


# --- fixture builders --------------------------------------------------------------------


def _oriented_jpeg(path: str, orientation: int) -> str:
    """A 400x200 JPEG, left half red and right half blue, with an EXIF orientation."""
    img = Image.new("RGB", (400, 200), (255, 0, 0))
    img.paste((0, 0, 255), (200, 0, 400, 200))
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, "JPEG", exif=exif.tobytes())
    return path


def _noise_png(w: int, h: int) -> bytes:
    """A PNG that does not compress away (so truncation cuts into pixel data)."""
    buf = io.BytesIO()
    Image.effect_noise((w, h), 100).convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR is patched to claim width x height (CRC fixed up)."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    # Signature (8) + length (4) + b"IHDR" (4), then width and height, big-endian.
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)
