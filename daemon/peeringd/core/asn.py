"""BGP AS numbers: plain and asdot notation, and the range Calico can store."""

from __future__ import annotations

import re

__all__ = ["CALICO_MAX", "MAX", "parse"]

MAX = 4_294_967_295
# Both Calico CRD flavours declare asNumber as `integer, format: int32`.
CALICO_MAX = 2_147_483_647

_ASDOT = re.compile(r"(\d{1,5})\.(\d{1,5})")
_ASPLAIN = re.compile(r"\d{1,10}")


def parse(value: object, *, limit: int = CALICO_MAX) -> int:
    """Return the AS number ``value`` denotes (an int, or text in plain or asdot form).

    Raises ValueError with a sentence a human understands when it is not an AS
    number, or when it is above ``limit``.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an AS number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _ASPLAIN.fullmatch(value):
        number = int(value)
    elif isinstance(value, str) and (match := _ASDOT.fullmatch(value)):
        high, low = int(match[1]), int(match[2])
        if high > 65535 or low > 65535:
            raise ValueError(f"{value!r} is not asdot: both halves must be 0..65535")
        number = high * 65536 + low
    else:
        raise ValueError(f"{value!r} is not an AS number (write 64512 or asdot 1.10)")
    if not 1 <= number <= MAX:
        raise ValueError(f"{number} is outside the AS number range 1..{MAX}")
    if number > limit:
        raise ValueError(
            f"{number} cannot be stored by Calico, whose CRDs hold AS numbers "
            f"as 32-bit signed integers (at most {CALICO_MAX})"
        )
    return number
