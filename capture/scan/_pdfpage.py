"""What a PDF page draws: its images with their drawn size, and whether it has text or vectors.

Private plumbing shared by :mod:`capture.scan.probe` (is this a scan?) and
:mod:`capture.scan.convert` (which image is the page, at what resolution?). It reads
content streams only; it never decodes an image.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import pikepdf

# Operators that show text (BT alone shows nothing, but a text object is text content).
_TEXT_OPS = frozenset({"BT", "Tj", "TJ", "'", '"'})
# Operators that paint paths or shadings. Path construction followed by "n" (for clipping)
# paints nothing, so "re", "m", "l", "W" and "n" are not vector content.
_PAINT_OPS = frozenset({"S", "s", "f", "F", "f*", "B", "B*", "b", "b*", "sh"})
_MAX_FORM_DEPTH = 12

Matrix = tuple[float, float, float, float, float, float]
_IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


@dataclass(frozen=True)
class DrawnImage:
    """An image XObject drawn by a page, with the size it is drawn at (PDF points)."""

    image: pikepdf.Stream
    #: Resource name it was drawn by (``/Im0``).
    name: str
    #: Length of the image's unit square edges once transformed by the CTM.
    width_pt: float
    height_pt: float


@dataclass(frozen=True)
class PageContent:
    """What one page draws, forms included."""

    images: tuple[DrawnImage, ...]
    has_text: bool
    has_vectors: bool
    has_inline_images: bool

    @property
    def is_scan(self) -> bool:
        """One image and nothing else: the page is a scanned sheet."""
        return (
            len(self.images) == 1
            and not self.has_text
            and not self.has_vectors
            and not self.has_inline_images
        )


def _multiply(m: Matrix, n: Matrix) -> Matrix:
    """``m × n`` in PDF's row-vector convention (``m`` applied first)."""
    a, b, c, d, e, f = m
    a2, b2, c2, d2, e2, f2 = n
    return (
        a * a2 + b * c2,
        a * b2 + b * d2,
        c * a2 + d * c2,
        c * b2 + d * d2,
        e * a2 + f * c2 + e2,
        e * b2 + f * d2 + f2,
    )


def _matrix(values: object) -> Matrix:
    numbers = [float(v) for v in values]  # type: ignore[attr-defined]
    if len(numbers) != 6:
        raise ValueError(f"a matrix needs 6 numbers, got {len(numbers)}")
    return (numbers[0], numbers[1], numbers[2], numbers[3], numbers[4], numbers[5])


class _Walker:
    def __init__(self) -> None:
        self.images: list[DrawnImage] = []
        self.has_text = False
        self.has_vectors = False
        self.has_inline_images = False

    def walk(
        self,
        container: pikepdf.Object | pikepdf.Page,
        resources: pikepdf.Object | None,
        ctm: Matrix,
        seen: frozenset[tuple[int, int]],
    ) -> None:
        stack: list[Matrix] = []
        for instruction in pikepdf.parse_content_stream(container):
            op = str(instruction.operator)
            operands = instruction.operands
            if op == "q":
                stack.append(ctm)
            elif op == "Q":
                ctm = stack.pop() if stack else ctm
            elif op == "cm":
                ctm = _multiply(_matrix(operands), ctm)
            elif op in _TEXT_OPS:
                self.has_text = True
            elif op in _PAINT_OPS:
                self.has_vectors = True
            elif op == "INLINE IMAGE":
                self.has_inline_images = True
            elif op == "Do" and operands:
                self._do(str(operands[0]), resources, ctm, seen)

    def _do(
        self,
        name: str,
        resources: pikepdf.Object | None,
        ctm: Matrix,
        seen: frozenset[tuple[int, int]],
    ) -> None:
        if resources is None or "/XObject" not in resources:
            return
        xobject = resources["/XObject"].get(name)
        if not isinstance(xobject, pikepdf.Stream):
            return
        subtype = xobject.get("/Subtype")
        if subtype == pikepdf.Name.Image:
            a, b, c, d, _, _ = ctm
            self.images.append(DrawnImage(xobject, name, math.hypot(a, b), math.hypot(c, d)))
        elif subtype == pikepdf.Name.Form:
            key = xobject.objgen
            if key in seen or len(seen) >= _MAX_FORM_DEPTH:
                raise ValueError(f"form XObject {name} is recursive or nested too deeply")
            matrix = _matrix(xobject["/Matrix"]) if "/Matrix" in xobject else _IDENTITY
            self.walk(
                xobject,
                xobject.get("/Resources", resources),
                _multiply(matrix, ctm),
                seen | {key},
            )


def page_content(page: pikepdf.Page) -> PageContent:
    """Walk the page's content streams and the forms they draw.

    Raises ``pikepdf.PdfError`` or ``ValueError`` when a content stream cannot be parsed.
    """
    walker = _Walker()
    walker.walk(page, page.obj.get("/Resources"), _IDENTITY, frozenset())
    return PageContent(
        images=tuple(walker.images),
        has_text=walker.has_text,
        has_vectors=walker.has_vectors,
        has_inline_images=walker.has_inline_images,
    )


def content_bytes(page: pikepdf.Page) -> bytes:
    """The page's content streams, decoded and joined as a viewer reads them."""
    contents = page.obj.get("/Contents")
    if contents is None:
        return b""
    if isinstance(contents, pikepdf.Array):
        return b"\n".join(bytes(part.read_bytes()) for part in contents)
    return bytes(contents.read_bytes())


def filters(image: pikepdf.Stream) -> tuple[str, ...]:
    """The image's filter chain as bare names (``("FlateDecode",)``)."""
    value = image.get("/Filter")
    if value is None:
        return ()
    if isinstance(value, pikepdf.Array):
        return tuple(str(item).lstrip("/") for item in value)
    return (str(value).lstrip("/"),)


# The keys that decide which pixels and colours an image stream decodes to.
_DECODING_KEYS = (
    "/Width",
    "/Height",
    "/BitsPerComponent",
    "/ColorSpace",
    "/Filter",
    "/DecodeParms",
    "/Decode",
    "/ImageMask",
    "/Mask",
    "/SMask",
    "/SMaskInData",
    "/Matte",
)
_MAX_CANON_DEPTH = 16


def _canonical(value: object, depth: int = 0) -> bytes:
    """A serialisation that resolves indirect objects, so renumbering does not matter."""
    if depth > _MAX_CANON_DEPTH:
        raise ValueError("image dictionary nested too deeply")
    if isinstance(value, pikepdf.Stream):
        keys = _DECODING_KEYS if value.get("/Subtype") == pikepdf.Name.Image else None
        head = _canonical_dict(value, keys, depth)
        return b"stream<" + head + hashlib.sha256(value.read_raw_bytes()).digest() + b">"
    if isinstance(value, pikepdf.Dictionary):
        return _canonical_dict(value, None, depth)
    if isinstance(value, pikepdf.Array):
        return b"[" + b" ".join(_canonical(item, depth + 1) for item in value) + b"]"
    if isinstance(value, pikepdf.String):
        return b"(" + bytes(value).hex().encode() + b")"
    return str(value).encode()


def _canonical_dict(
    value: pikepdf.Dictionary | pikepdf.Stream, keys: tuple[str, ...] | None, depth: int
) -> bytes:
    names = sorted(str(k) for k in value if k != "/Length" and (keys is None or k in keys))
    parts = []
    for name in names:
        item = value[name]
        # A one-filter chain may be written [/F] or /F (qpdf writes the latter): same thing.
        if name in ("/Filter", "/DecodeParms") and isinstance(item, pikepdf.Array):
            item = item[0] if len(item) == 1 else item
        parts.append(name.encode() + b" " + _canonical(item, depth + 1))
    return b"<<" + b" ".join(parts) + b">>"


def encoded_fingerprint(image: pikepdf.Stream) -> str:
    """SHA-256 of an image as encoded: its raw stream and the keys that say how to decode it.

    Equal fingerprints mean the very same encoded image (so the same pixels and colours)
    without decoding it; indirect objects are resolved, so renumbering does not matter,
    and keys that do not change pixels (``/Interpolate``, ``/Metadata``...) are ignored.
    """
    return hashlib.sha256(_canonical(image)).hexdigest()
