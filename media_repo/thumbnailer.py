"""Thumbnail making for the content repository: probe, render and choose.

Client-Server API, "Content repository" / "Thumbnails" (and the ``animated`` parameter of
``GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}``, MSC2705). A pure
module: paths and values in, bytes and values out; no twisted, so the caller decides
which thread it runs on (decoding is CPU-bound and belongs off the reactor).

The spec's rules this module keeps:

- "crop" returns an image in the aspect ratio of the requested size; "scale" keeps the
  source's aspect ratio and fits it in the requested box.
- Servers MUST NOT upscale thumbnails. Where the source is smaller than the request,
  ``render`` returns the source's own size (scale) or the largest region of the source
  with the requested aspect (crop). Synapse upscales crops here; the spec forbids it.
- With ``animated=true`` an animated thumbnail SHOULD be returned where possible, and
  servers SHOULD prefer ``image/webp`` for it; with ``animated`` false or absent the
  thumbnail MUST NOT be animated.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageSequence

# Picking among stored thumbnails needs no Pillow; it lives in its own module and is
# re-exported so the thumbnail API is one import.
from media_repo.thumbnail_choice import METHODS, Available, choose

__all__ = [
    "DEFAULT_SIZES",
    "MAX_ANIMATED_FRAMES",
    "THUMBNAILABLE_TYPES",
    "Available",
    "ImageInfo",
    "Rendered",
    "ThumbnailError",
    "choose",
    "output_type_for",
    "probe",
    "render",
    "render_all",
]

# The sizes the spec says servers SHOULD produce (also Synapse's defaults).
DEFAULT_SIZES: tuple[tuple[int, int, str], ...] = (
    (32, 32, "crop"),
    (96, 96, "crop"),
    (320, 240, "scale"),
    (640, 480, "scale"),
    (800, 600, "scale"),
)

# Pillow format name for each content type we decode. Kept to the four web formats, as
# Synapse does: every decoder we let Pillow run on uploaded bytes is attack surface, and
# BMP/TIFF/ICO/PSD/... are rare in chat and have had the most decoder bugs. SVG is never
# thumbnailed (rendering it means running a browser engine on user input).
_PILLOW_FORMAT_BY_TYPE = {
    "image/jpeg": "JPEG",
    "image/jpg": "JPEG",  # not registered, but clients send it
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
}
THUMBNAILABLE_TYPES: frozenset[str] = frozenset(_PILLOW_FORMAT_BY_TYPE)
_PILLOW_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")
_TYPE_BY_PILLOW_FORMAT = {
    "JPEG": "image/jpeg",
    # Phone cameras write MPO: a JPEG followed by more pictures (a stereo pair, a depth
    # map, a preview). Pillow opens it as a JPEG subclass; it is a still JPEG to us.
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}

# The thumbnail types render can write, and the Pillow encoder for each.
_ENCODER_BY_TYPE = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
}
_ANIMATABLE_OUTPUT_TYPES = frozenset({"image/webp", "image/gif"})
# Formats whose extra frames are animation (APNG is a PNG); MPO's extra frames are not.
_ANIMATED_FORMATS = frozenset({"GIF", "WEBP", "PNG"})

# At most this many frames go into an animated thumbnail. A thumbnail is a preview: 100
# frames is 4-10 s of a typical GIF, and the cost (decode + resize + encode) is linear in
# frames. Frames past the cap are dropped, so long animations end early and loop.
MAX_ANIMATED_FRAMES = 100

_JPEG_QUALITY = 80
_WEBP_QUALITY = 80
# Decode JPEGs at a DCT-reduced scale no smaller than this multiple of the target, then
# finish with a Lanczos resize: the same trade Pillow's Image.thumbnail makes (large
# speed-up, no visible loss at a gap of 2).
_REDUCING_GAP = 2.0
_DEFAULT_FRAME_MS = 100  # libwebp's and browsers' default for a frame with no duration

_EXIF_ORIENTATION = 0x0112
# EXIF orientation value -> the transpose that shows the image upright.
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})


class ThumbnailError(Exception):
    """The file cannot be thumbnailed: not an image, unsupported, too big or corrupt."""


@dataclass(frozen=True)
class ImageInfo:
    """What the header says: upright size (EXIF orientation applied), type, animation."""

    width: int
    height: int
    content_type: str
    animated: bool


@dataclass(frozen=True)
class Rendered:
    """An encoded thumbnail and its actual pixel size."""

    data: bytes
    content_type: str
    width: int
    height: int


def probe(path: str, *, max_pixels: int) -> ImageInfo:
    """Read the image header at ``path`` (no pixel decoding).

    Raises ThumbnailError if the file is not an image of THUMBNAILABLE_TYPES or has more
    than ``max_pixels`` pixels (the decompression-bomb guard).
    """
    with _open(path, max_pixels) as img:
        try:
            return _info(img)
        except ThumbnailError:
            raise
        except Exception as e:  # a lazy decoder may fail while seeking frames
            raise ThumbnailError(f"unreadable image: {e}") from e


def output_type_for(source_type: str, animated: bool, accepts_webp: bool) -> str:
    """The content type a thumbnail of a ``source_type`` image should have.

    ``animated`` means an animated thumbnail is wanted and the source is animated.
    WebP when the client accepts it (the spec prefers WebP for animation and it is the
    smallest for stills); else an animated GIF from an animated GIF; else Synapse's map:
    JPEG from JPEG, PNG from PNG and GIF (they may have transparency or a palette). We
    differ from Synapse for WebP sources (it writes JPEG): WebP often carries alpha,
    which JPEG would flatten, so PNG.
    """
    if source_type not in THUMBNAILABLE_TYPES:
        raise ThumbnailError(f"cannot thumbnail {source_type!r}")
    if accepts_webp:
        return "image/webp"
    if animated and source_type == "image/gif":
        return "image/gif"
    if _PILLOW_FORMAT_BY_TYPE[source_type] == "JPEG":
        return "image/jpeg"
    return "image/png"


def render(
    src_path: str,
    width: int,
    height: int,
    method: str,
    output_type: str,
    *,
    max_pixels: int,
    animated: bool = False,
) -> Rendered:
    """Make a ``method`` thumbnail of the image at ``src_path`` for a ``width`` x ``height``
    request, encoded as ``output_type``.

    - scale: the largest size that fits in width x height with the source's aspect ratio,
      but never larger than the source.
    - crop: scaled to cover width x height, then centre-cropped to exactly that; if the
      source is smaller than the request, no upscaling: the largest centred region of the
      source with the requested aspect ratio, at the source's scale.

    EXIF orientation is applied first, so sizes are those of the upright image. With
    ``animated`` and an animated source and an animatable ``output_type`` (WebP, GIF),
    every frame (up to MAX_ANIMATED_FRAMES, and no more frames than ``max_pixels`` pixels
    in all) is resized and durations and loop count are kept; otherwise the thumbnail is
    the first frame.

    Raises ThumbnailError for anything the image makes go wrong (not an image, too big,
    truncated, corrupt); ValueError for a bad ``method``, size or ``output_type`` (the
    caller's bug: they are checked at the HTTP edge).
    """
    _check_request(width, height, method, output_type)
    with _open(src_path, max_pixels) as img:
        try:
            return _render_open(
                img, width, height, method, output_type, max_pixels, animated
            )
        except ThumbnailError:
            raise
        except Exception as e:
            # Decoders raise OSError, SyntaxError, ValueError, EOFError, struct.error,
            # MemoryError... for bad input; to the caller they all mean "can't".
            raise ThumbnailError(f"cannot thumbnail: {e}") from e


def render_all(
    src_path: str,
    sizes: Sequence[tuple[int, int, str]],
    output_type: str,
    *,
    max_pixels: int,
) -> list[Rendered]:
    """Still thumbnails of every ``(width, height, method)`` in ``sizes`` (e.g.
    DEFAULT_SIZES), in that order, decoding the source once.

    The same as calling ``render`` (animated=False) for each size, but a big JPEG is
    decoded a single time (at the reduced scale the largest size allows) instead of once
    per size, which is most of the cost; see bench/thumbnails.py. Errors as ``render``.
    """
    for width, height, method in sizes:
        _check_request(width, height, method, output_type)
    if not sizes:
        return []
    with _open(src_path, max_pixels) as img:
        try:
            return _render_all_open(img, sizes, output_type)
        except ThumbnailError:
            raise
        except Exception as e:  # see render
            raise ThumbnailError(f"cannot thumbnail: {e}") from e


# --- internals -------------------------------------------------------------------------


def _check_request(width: int, height: int, method: str, output_type: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown thumbnail method {method!r}")
    if width < 1 or height < 1:
        raise ValueError(f"bad thumbnail size {width}x{height}")
    if output_type not in _ENCODER_BY_TYPE:
        raise ValueError(f"cannot write thumbnails as {output_type!r}")


def _open(path: str, max_pixels: int) -> Image.Image:
    """Open the header of a supported image, enforcing ``max_pixels``.

    The limit is checked here per call rather than by setting Image.MAX_IMAGE_PIXELS,
    which is process-global (and read by other threads). Pillow's own guard stays as an
    outer bound (it raises above 2 x MAX_IMAGE_PIXELS, ~179 MP by default); its error
    becomes ThumbnailError like any other.
    """
    try:
        img = Image.open(path, formats=_PILLOW_FORMATS)
    except Image.DecompressionBombError as e:
        raise ThumbnailError(f"image too large: {e}") from e
    except Exception as e:  # UnidentifiedImageError (an OSError), SyntaxError, ...
        raise ThumbnailError(f"not a supported image: {e}") from e
    w, h = img.size
    if w < 1 or h < 1 or w * h > max_pixels:
        img.close()
        raise ThumbnailError(f"image of {w}x{h} pixels is over the limit")
    return img


def _info(img: Image.Image) -> ImageInfo:
    w, h = img.size
    if _orientation(img) in _SWAPS_AXES:
        w, h = h, w
    return ImageInfo(
        width=w,
        height=h,
        content_type=_TYPE_BY_PILLOW_FORMAT[img.format or ""],
        animated=_is_animated(img),
    )


def _is_animated(img: Image.Image) -> bool:
    return img.format in _ANIMATED_FORMATS and bool(getattr(img, "is_animated", False))


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation from the header, 1 (upright) if absent or unreadable.

    Parsed from ``info["exif"]`` rather than ``getexif()``, which for PNG decodes the
    whole image to look for a trailing eXIf chunk; probe and render must agree, and
    probe reads only the header. Malformed EXIF is common in the wild and only costs
    the orientation, not the thumbnail.
    """
    raw = img.info.get("exif")
    if not raw:
        return 1
    try:
        exif = Image.Exif()
        exif.load(raw)
        value = exif.get(_EXIF_ORIENTATION)
    except Exception:
        return 1
    return value if isinstance(value, int) and value in _TRANSPOSE_FOR_ORIENTATION else 1


def _scale_size(sw: int, sh: int, w: int, h: int) -> tuple[int, int]:
    """Fit sw x sh within w x h keeping aspect ratio; never larger than the source."""
    if sw <= w and sh <= h:
        return sw, sh
    if w * sh <= h * sw:  # width is the binding side
        return w, max(1, round(sh * w / sw))
    return max(1, round(sw * h / sh)), h


def _crop_plan(
    sw: int, sh: int, w: int, h: int
) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """(size to resize the source to, centred box to crop from that) for a crop."""
    if sw >= w and sh >= h:
        factor = max(w / sw, h / sh)
        rw, rh = max(w, round(sw * factor)), max(h, round(sh * factor))
        cw, ch = w, h
    else:
        # The source is short of the request on some side: keep its scale and cut the
        # largest region with the requested aspect ratio.
        rw, rh = sw, sh
        if sw * h <= sh * w:
            cw, ch = sw, max(1, min(sh, round(sw * h / w)))
        else:
            cw, ch = max(1, min(sw, round(sh * w / h))), sh
    left, top = (rw - cw) // 2, (rh - ch) // 2
    return (rw, rh), (left, top, left + cw, top + ch)


def _plan(
    img: Image.Image, orientation: int, width: int, height: int, method: str
) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
    """(size to resize the stored image to, box to crop from that or None).

    Sizing and cropping happen in the stored (unrotated) frame and only the small result
    is transposed: a centred crop commutes with the rotation, and rotating a thumbnail
    is cheap. So an upright request is turned into a stored-frame one here.
    """
    if orientation in _SWAPS_AXES:
        width, height = height, width
    sw, sh = img.size
    if method == "scale":
        return _scale_size(sw, sh, width, height), None
    return _crop_plan(sw, sh, width, height)


def _draft(img: Image.Image, sizes: Sequence[tuple[int, int]]) -> None:
    """Let a JPEG decode at 1/2, 1/4 or 1/8 scale straight from the DCT, staying at least
    _REDUCING_GAP times the largest target: most of the cost of a big photo is there."""
    if img.format in ("JPEG", "MPO"):
        w = max(s[0] for s in sizes)
        h = max(s[1] for s in sizes)
        img.draft(None, (int(w * _REDUCING_GAP), int(h * _REDUCING_GAP)))


def _render_open(
    img: Image.Image,
    width: int,
    height: int,
    method: str,
    output_type: str,
    max_pixels: int,
    animated: bool,
) -> Rendered:
    orientation = _orientation(img)
    transpose = _TRANSPOSE_FOR_ORIENTATION.get(orientation)
    size, box = _plan(img, orientation, width, height, method)
    if animated and output_type in _ANIMATABLE_OUTPUT_TYPES and _is_animated(img):
        frames, durations = _animated_frames(img, size, box, transpose, max_pixels)
        if len(frames) > 1:
            loop = img.info.get("loop")
            return _encode_animation(frames, durations, loop, output_type)
        still = frames[0]
    else:
        _draft(img, [size])
        still = _resize(img, size, box, transpose)
    return _encode_still(still, output_type)


def _render_all_open(
    img: Image.Image, sizes: Sequence[tuple[int, int, str]], output_type: str
) -> list[Rendered]:
    orientation = _orientation(img)
    transpose = _TRANSPOSE_FOR_ORIENTATION.get(orientation)
    plans = [_plan(img, orientation, w, h, m) for w, h, m in sizes]
    _draft(img, [size for size, _ in plans])
    decoded = _normalise_mode(img)  # decode (and convert) once for every size
    return [
        _encode_still(_resize(decoded, size, box, transpose), output_type)
        for size, box in plans
    ]


def _animated_frames(
    img: Image.Image,
    size: tuple[int, int],
    box: tuple[int, int, int, int] | None,
    transpose: Image.Transpose | None,
    max_pixels: int,
) -> tuple[list[Image.Image], list[int]]:
    """Resized RGBA frames and their durations (ms), within the frame and pixel budget.

    Decoding n frames costs as much as one image of n times the pixels, so the
    decompression-bomb limit applies to the frames' sum. Each frame's size is read from
    its header before it is decoded: a GIF frame may be bigger than the logical screen.
    """
    frames: list[Image.Image] = []
    durations: list[int] = []
    decoded = 0
    for frame in ImageSequence.Iterator(img):
        pixels = frame.size[0] * frame.size[1]
        if frames and (
            len(frames) >= MAX_ANIMATED_FRAMES or decoded + pixels > max_pixels
        ):
            break
        if pixels > max_pixels:
            raise ThumbnailError(f"frame of {frame.size} pixels is over the limit")
        decoded += pixels
        duration = frame.info.get("duration")
        durations.append(int(duration) if duration is not None else _DEFAULT_FRAME_MS)
        frames.append(_resize(frame.convert("RGBA"), size, box, transpose))
    return frames, durations


def _resize(
    img: Image.Image,
    size: tuple[int, int],
    box: tuple[int, int, int, int] | None,
    transpose: Image.Transpose | None,
) -> Image.Image:
    """Resize to ``size`` (in source coordinates), crop to ``box``, then transpose.

    ``img`` may be a JPEG decoded at a reduced ``draft`` scale: the resize maps the
    whole of it onto ``size`` all the same.
    """
    img = _normalise_mode(img)
    if img.size != size:
        # reducing_gap: box-reduce by an integer factor first, then Lanczos for the rest;
        # near-identical output and much faster on big PNGs (JPEGs are already drafted).
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if box is not None and box != (0, 0, *size):
        img = img.crop(box)
    if transpose is not None:
        img = img.transpose(transpose)
    return img


def _normalise_mode(img: Image.Image) -> Image.Image:
    """RGB or RGBA (or L) so resampling is smooth and any encoder accepts the result.

    Palette and 1-bit images would otherwise be resized with nearest-neighbour (ugly);
    CMYK has no place in PNG/WebP; 16-bit grey must be scaled to 8 bits, not clipped.
    """
    mode = img.mode
    if mode in ("RGB", "RGBA", "L"):
        if "transparency" in img.info and mode != "RGBA":
            return img.convert("RGBA")
        return img
    if mode.startswith("I;16") or mode == "I":
        grey = img.convert("I").point(lambda v: v * (1 / 256))
        return grey.convert("L")
    if mode == "F":
        return img.point(lambda v: v * 255).convert("L")
    if mode in ("LA", "PA", "RGBa", "La") or "transparency" in img.info:
        return img.convert("RGBA")
    if mode == "P" and img.palette is not None and img.palette.mode == "RGBA":
        return img.convert("RGBA")
    return img.convert("RGB")  # 1, P, CMYK, YCbCr, LAB, HSV


def _encode_still(img: Image.Image, output_type: str) -> Rendered:
    encoder = _ENCODER_BY_TYPE[output_type]
    buf = io.BytesIO()
    if encoder == "JPEG":
        if img.mode == "RGBA":
            # JPEG has no alpha: lay transparent parts on white, not the black that
            # dropping the channel would give.
            backdrop = Image.new("RGB", img.size, (255, 255, 255))
            backdrop.paste(img, mask=img.getchannel("A"))
            img = backdrop
        img.save(buf, "JPEG", quality=_JPEG_QUALITY)
    elif encoder == "WEBP":
        img.save(buf, "WEBP", quality=_WEBP_QUALITY)
    else:
        img.save(buf, encoder)
    return Rendered(buf.getvalue(), output_type, img.size[0], img.size[1])


def _encode_animation(
    frames: list[Image.Image], durations: list[int], loop: int | None, output_type: str
) -> Rendered:
    buf = io.BytesIO()
    options: dict[str, object] = {
        "save_all": True,
        "append_images": frames[1:],
        "duration": durations,
    }
    if output_type == "image/webp":
        # WebP has no "play once but no loop header"; a GIF without a loop count plays
        # once, which in WebP terms is loop=1. 0 means forever in both.
        options.update(
            loop=1 if loop is None else loop, quality=_WEBP_QUALITY, minimize_size=True
        )
        frames[0].save(buf, "WEBP", **options)
    else:
        if loop is not None:
            options["loop"] = loop
        options["disposal"] = 2  # each frame is a full picture: clear before drawing
        frames[0].save(buf, "GIF", **options)
    return Rendered(buf.getvalue(), output_type, frames[0].size[0], frames[0].size[1])
