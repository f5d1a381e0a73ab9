"""Structural check of JPEG 2000 codestreams before decoding (ISO/IEC 15444-1 Annex A).

Why: OpenJPEG (pylibjpeg's plugin, and GDCM) decodes a damaged codestream without an error or a warning and returns
plausible-looking garbage (a DICOM test file with its last 30 % zeroed decoded with errors of 771 grey levels, exit 0).
A lossless codestream carries no checksum, but its structure is checkable: it starts with SOC and ends with EOC, the
tile-part lengths (Psot) chain exactly from one SOT to the next, and inside packet data a 0xFF byte is never followed
by a byte above 0x8F (bit stuffing), except the SOP/EPH markers. A stream that breaks any of these is corrupt and its
series is refused; damage that keeps the structure intact cannot be seen without a checksum (docs/reliability.md).
"""

from __future__ import annotations

SOC, SOT, SOD, EOC = 0xFF4F, 0xFF90, 0xFF93, 0xFFD9
IN_BITSTREAM = (0x91, 0x92)  # SOP, EPH: the only markers allowed inside packet data
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


def _codestream(data: bytes) -> bytes:
    """The raw codestream, out of a JP2 file when a vendor wrapped it in one (``jp2c`` box)."""
    if not data.startswith(JP2_SIGNATURE):
        return data
    pos = 0
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        header = 8
        if length == 1:
            length, header = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        elif length == 0:
            length = len(data) - pos
        if kind == b"jp2c":
            return data[pos + header:pos + length]
        if length < header:
            break
        pos += length
    raise ValueError("JP2 file without a codestream box")


def check_codestream(data: bytes) -> None:
    """Raise ``ValueError`` naming what is wrong when ``data`` is not a structurally intact JPEG 2000 codestream."""
    cs = _codestream(bytes(data))
    if len(cs) < 4 or int.from_bytes(cs[:2], "big") != SOC:
        raise ValueError("does not start with the SOC marker")
    eoc = cs.rfind(b"\xff\xd9")
    padding = cs[eoc + 2:] if eoc >= 0 else b""
    # DICOM pads a fragment to even length (0x00, some encoders 0xFF): a few such bytes may follow EOC
    if eoc < 0 or len(padding) > 8 or padding.strip(b"\x00\xff"):
        raise ValueError("does not end with the EOC marker (truncated or overwritten)")
    end = eoc + 2
    pos = 2
    while True:  # main header: marker segments up to the first tile-part
        if pos + 4 > end:
            raise ValueError("main header runs past the end")
        marker = int.from_bytes(cs[pos:pos + 2], "big")
        if marker == SOT:
            break
        if marker >> 8 != 0xFF:
            raise ValueError(f"main header broken at byte {pos}")
        pos += 2 + int.from_bytes(cs[pos + 2:pos + 4], "big")
    while pos < end - 2:  # tile-parts: SOT ... SOD <packet data>, chained by Psot
        if int.from_bytes(cs[pos:pos + 2], "big") != SOT:
            raise ValueError(f"expected a tile-part (SOT) at byte {pos}")
        psot = int.from_bytes(cs[pos + 6:pos + 10], "big")
        stop = end - 2 if psot == 0 else pos + psot
        if stop > end - 2:
            raise ValueError(f"tile-part at byte {pos} is {psot} bytes long, past the end of the stream")
        sod = pos + 2 + int.from_bytes(cs[pos + 2:pos + 4], "big")
        while sod < stop and int.from_bytes(cs[sod:sod + 2], "big") != SOD:  # tile-part header segments
            if cs[sod] != 0xFF:
                raise ValueError(f"tile-part header broken at byte {sod}")
            sod += 2 + int.from_bytes(cs[sod + 2:sod + 4], "big")
        body = cs[sod + 2:stop]
        i = body.find(b"\xff")
        while i != -1 and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt > 0x8F and nxt not in IN_BITSTREAM:
                raise ValueError(f"illegal marker 0xFF{nxt:02X} inside packet data (byte {sod + 2 + i})")
            i = body.find(b"\xff", i + 1)
        pos = stop
