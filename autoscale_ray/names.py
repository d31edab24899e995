"""Names that become paths (the search's name, domain names) are single safe path components."""

from __future__ import annotations

import re

from autoscale_ray.errors import BadInput, short

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


def check_name(name: object, where: str, what: str = "name") -> str:
    """`name` if it is one path component of letters, digits, '_', '-', '.' (not starting with
    '.' or '-', no '/', at most 128 characters); else one BadInput line."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        raise BadInput(f"{what} {short(name)} is not a simple name", where,
                       "use letters, digits, '_', '-' and '.' (no '/', no leading '.', no '..'), "
                       "at most 128 characters")
    return name
