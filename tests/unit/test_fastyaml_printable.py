"""fastyaml's non-printable class, written as the short list of refused characters, refuses exactly the code points
outside YAML's printable set that the block parser leaves to PyYAML (checked over all 1,114,112)."""

from __future__ import annotations

import re

from kubectl_aicr.fastyaml import _NON_PRINTABLE

#: YAML 1.1 printable characters, minus the line breaks NEL, LS, PS and the BOM: what the block parser accepts.
ACCEPTED = re.compile("[^\x09\x0a\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")


def test_non_printable_is_the_complement_of_the_accepted_set() -> None:
    every = "".join(map(chr, range(0x110000)))
    assert [m.start() for m in _NON_PRINTABLE.finditer(every)] == [m.start() for m in ACCEPTED.finditer(every)]
    assert _NON_PRINTABLE.search("\x85") and _NON_PRINTABLE.search("\ufeff") and not _NON_PRINTABLE.search("é\t")
