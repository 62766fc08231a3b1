"""Safe XML parsing for everything capture reads from outside (e-invoices, XMP packets).

One entry point, :func:`parse_xml`. It refuses any document type declaration (so no DTD,
no entity declaration, no billion laughs), never expands or fetches an entity, never
touches the network or the file system, and bounds the size and the nesting depth. It
raises :class:`~capture.errors.UnsafeXml` or :class:`~capture.errors.MalformedXml` with a
reason a person can act on.

lxml's own parser does the work with entity resolution, DTD loading and network access
switched off; ``defusedxml.lxml`` is deprecated upstream, so its one useful check (refuse
any DOCTYPE) is done here. The check runs at the first element, before the body is read.
This module must not validate, interpret or modify documents.
"""

from __future__ import annotations

import io

from lxml import etree

from capture.errors import EmptyInput, MalformedXml, UnsafeXml

#: Real invoices are a few hundred KiB at most; EXTENDED ones with many lines a few MiB.
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
#: CII EXTENDED with nested sub-lines stays below 30 levels; libxml2 stops at 256 anyway.
DEFAULT_MAX_DEPTH = 100


def parse_xml(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> etree._Element:
    """Parse ``data`` and return the root element, or raise a capture ``BadInput``.

    The input is never modified; comments and processing instructions are kept.
    """
    if not data:
        raise EmptyInput("the XML document is empty (0 bytes)")
    if len(data) > max_bytes:
        raise UnsafeXml(
            f"the XML document is {len(data)} bytes, above the limit of {max_bytes} bytes",
            reason="too_large",
            size=len(data),
            limit=max_bytes,
        )
    events = etree.iterparse(
        io.BytesIO(data),
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )
    depth = 0
    first = True
    try:
        for event, element in events:
            if event == "end":
                depth -= 1
                continue
            if first:
                first = False
                _refuse_doctype(element)
            depth += 1
            if depth > max_depth:
                raise UnsafeXml(
                    f"the XML document nests elements deeper than {max_depth} levels",
                    reason="too_deep",
                    limit=max_depth,
                )
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        raise MalformedXml(
            f"the document is not well-formed XML: {exc.msg}",
            line=line,
            column=column,
        ) from exc
    root = events.root
    if root is None:  # pragma: no cover - lxml raises XMLSyntaxError first
        raise MalformedXml("the document has no root element")
    return root


def _refuse_doctype(element: etree._Element) -> None:
    docinfo = element.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXml(
            "the XML document has a DOCTYPE declaration; DTDs and entities are refused "
            "(e-invoices never need them)",
            reason="doctype",
            doctype=docinfo.doctype,
        )
