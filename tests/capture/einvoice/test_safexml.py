"""Safe XML: what an attacker can put in an "invoice" is refused before it costs anything,
and no byte ever leaves the machine (no file read, no network request)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from archive.errors import BadInput
from capture.errors import EmptyInput, MalformedXml, UnsafeXml
from capture.safexml import DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, parse_xml

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rsm:CrossIndustryInvoice
  xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
>&lol9;</rsm:CrossIndustryInvoice>
"""

QUADRATIC_BLOWUP = (
    b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "'
    + b"x" * 50_000
    + b'">]><a>'
    + b"&x;" * 50_000
    + b"</a>"
)

XXE_FILE = b"""<?xml version="1.0"?>
<!DOCTYPE invoice [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<invoice><note>&xxe;</note></invoice>"""

XXE_PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE invoice [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>
<invoice/>"""


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP port on loopback that records whether anything connected to it."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    try:
        yield server
    finally:
        server.close()


def _nobody_connected(server: socket.socket) -> bool:
    time.sleep(0.05)
    try:
        connection, _ = server.accept()
    except BlockingIOError:
        return True
    connection.close()
    return False


def test_billion_laughs_is_refused_quickly():
    started = time.perf_counter()
    with pytest.raises(UnsafeXml) as caught:
        parse_xml(BILLION_LAUGHS)
    assert time.perf_counter() - started < 0.5
    assert caught.value.data["reason"] == "doctype"
    assert "DOCTYPE" in str(caught.value)
    assert isinstance(caught.value, BadInput)


def test_quadratic_blowup_is_refused():
    with pytest.raises(UnsafeXml, match="DOCTYPE"):
        parse_xml(QUADRATIC_BLOWUP)


@pytest.mark.parametrize(
    "document", [XXE_FILE, XXE_PARAMETER_ENTITY], ids=["general-entity", "parameter-entity"]
)
def test_xxe_to_a_local_file_is_refused_without_reading_it(document):
    with pytest.raises(UnsafeXml) as caught:
        parse_xml(document)
    assert "root:" not in str(caught.value) + repr(caught.value.data)


def test_xxe_over_http_makes_no_request(listener):
    port = listener.getsockname()[1]
    document = (
        b'<?xml version="1.0"?><!DOCTYPE invoice [<!ENTITY xxe SYSTEM "http://127.0.0.1:'
        + str(port).encode()
        + b'/steal">]><invoice>&xxe;</invoice>'
    )
    with pytest.raises(UnsafeXml):
        parse_xml(document)
    assert _nobody_connected(listener)


def test_external_dtd_is_neither_fetched_nor_accepted(listener):
    port = listener.getsockname()[1]
    document = (
        b'<?xml version="1.0"?><!DOCTYPE invoice SYSTEM "http://127.0.0.1:'
        + str(port).encode()
        + b'/invoice.dtd"><invoice>1</invoice>'
    )
    with pytest.raises(UnsafeXml, match="DOCTYPE"):
        parse_xml(document)
    assert _nobody_connected(listener)


def test_a_harmless_doctype_is_refused_too():
    with pytest.raises(UnsafeXml):
        parse_xml(b"<!DOCTYPE invoice><invoice/>")


def test_oversized_document_is_refused_before_parsing():
    payload = b"<a>" + b"x" * DEFAULT_MAX_BYTES + b"</a>"
    with pytest.raises(UnsafeXml) as caught:
        parse_xml(payload)
    assert caught.value.data == {
        "reason": "too_large",
        "size": len(payload),
        "limit": DEFAULT_MAX_BYTES,
    }


def test_size_limit_is_a_parameter():
    with pytest.raises(UnsafeXml, match="above the limit of 10 bytes"):
        parse_xml(b"<invoice>12345</invoice>", max_bytes=10)


def test_nesting_at_the_limit_passes_and_one_deeper_is_refused():
    def nested(depth: int) -> bytes:
        return b"<a>" * depth + b"</a>" * depth

    assert parse_xml(nested(DEFAULT_MAX_DEPTH)).tag == "a"
    with pytest.raises(UnsafeXml) as caught:
        parse_xml(nested(DEFAULT_MAX_DEPTH + 1))
    assert caught.value.data["reason"] == "too_deep"


def test_very_deep_nesting_is_refused_as_unsafe():
    with pytest.raises(UnsafeXml, match="deeper than"):
        parse_xml(b"<a>" * 100_000 + b"</a>" * 100_000)


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        (b"<invoice><id>1</invoice>", "mismatch"),
        (b"<invoice><id>1</id>", "end"),
        (b"<invoice/><extra/>", "Extra content"),
        (b'<?xml version="1.0" encoding="UTF-9"?><invoice/>', "encoding"),
        (b"<invoice>\xff\xfe</invoice>", ""),
    ],
    ids=["mismatched-tags", "truncated", "two-roots", "unknown-encoding", "bad-utf8"],
)
def test_malformed_xml_is_reported_with_its_position(document, fragment):
    with pytest.raises(MalformedXml) as caught:
        parse_xml(document)
    assert fragment in str(caught.value)
    assert str(caught.value).startswith("the document is not well-formed XML")
    assert {"line", "column"} <= set(caught.value.data)
    assert isinstance(caught.value, BadInput)


def test_empty_input_is_bad_input():
    with pytest.raises(EmptyInput):
        parse_xml(b"")


def test_ordinary_documents_parse_with_predefined_entities_and_character_references():
    root = parse_xml(
        "<?xml version='1.0' encoding='UTF-16'?><note>a &amp; b &#233; &lt;c&gt;</note>".encode(
            "utf-16"
        )
    )
    assert root.text == "a & b é <c>"


def test_comments_and_processing_instructions_are_harmless():
    root = parse_xml(b"<?xml version='1.0'?><!-- hello --><?pi x?><invoice><!-- c -->1</invoice>")
    assert root.tag == "invoice"
