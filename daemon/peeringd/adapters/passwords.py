"""BGP session passwords: read from the files the state file names, checked before use.

A password file holds one line (a trailing newline is not part of the password). A
file that cannot be read, or a password no device command line can carry, is a
problem of the state file at ``adcs[N].bgpPassword.file``: nothing is planned or
sent with it. Messages name the file and the field, never the password.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from peeringd.core import secret
from peeringd.errors import SourceProblem, StateFileError

if TYPE_CHECKING:
    from peeringd.adapters.statefile import LoadedState

__all__ = ["read"]


def read(loaded: LoadedState, *, required: bool = True) -> LoadedState:
    """``loaded`` with every ADC's password read from its file. Without ``required``, a file
    that cannot be read leaves its password unknown (None) instead of being an error."""
    problems: list[SourceProblem] = []
    adcs = []
    for index, adc in enumerate(loaded.state.adcs):
        setting = adc.bgp_password
        if setting is None:
            adcs.append(adc)
            continue
        where = ("adcs", index, "bgpPassword", "file")
        try:
            value = setting.file.read_text(encoding="utf-8").rstrip("\n")
        except (OSError, UnicodeDecodeError) as error:
            if required:
                reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
                problems.append(loaded.locate(where, f"cannot read {setting.file}: {reason}"))
            adcs.append(adc)
            continue
        if (refusal := secret.refusal(value)) is not None:
            problems.append(loaded.locate(where, f"the password in {setting.file} {refusal}"))
            continue
        password = setting.model_copy(update={"value": secret.Password(value)})
        adcs.append(adc.model_copy(update={"bgp_password": password}))
    if problems:
        raise StateFileError(problems)
    return dataclasses.replace(loaded, state=loaded.state.model_copy(update={"adcs": tuple(adcs)}))
