"""The binding's status codes are the library's: every DESCENT_* code of include/descent.h's
enum descent_status (generated from the Swift `Status` enum, the one definition of the codes)
has its exception class with the same number and C name, and the binding knows no other code."""
from __future__ import annotations

import re

from descent import errors
from conftest import REPO_ROOT, clib


def header_status_codes() -> dict[str, int]:
    header = (REPO_ROOT / "include" / "descent.h").read_text()
    enum = re.search(r"typedef enum descent_status \{(.*?)\} descent_status;", header, re.S)
    assert enum, "include/descent.h has no enum descent_status"
    return {name: int(value) for name, value in re.findall(r"^\s*(DESCENT_\w+) = (\d+),$", enum.group(1), re.M)}


def test_every_header_code_has_its_exception_and_no_other():
    codes = header_status_codes()
    assert codes.pop("DESCENT_OK") == 0
    assert len(codes) >= 9  # the parse found the enum's entries
    binding = {cls.status_name: cls.status for cls in errors.BY_STATUS.values()}
    assert binding == codes
    assert all(errors.BY_STATUS[code].status == code for code in codes.values())


def test_the_library_names_every_code_as_the_header_does():
    for name, code in header_status_codes().items():
        assert clib.descent_status_name(code).decode() == name
