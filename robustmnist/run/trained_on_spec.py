"""``MODEL::trained-on=fonts,noise``: one bench model's declaration of what it was trained on.

A bench model argument's ``::SPEC`` is its input convention (``range=norm,polarity=normal``);
a ``trained-on=`` item may sit among those keys and overrides ``--trained-on`` for that model.
Its names run up to the next ``key=value`` item, so ``net.pt::trained-on=fonts,noise,range=norm``
declares fonts and noise and the convention ``range=norm``; ``trained-on=none`` declares nothing
(a model the flag should not cover).
"""

from __future__ import annotations

from ..errors import UserError

KEY = "trained-on"


def split_trained_on(arg: str, spec: str) -> tuple[str | None, str | None]:
    """(the convention part of ``spec`` or None, the declared names or None when not given).

    The names come back comma-joined; "" means ``trained-on=none`` (declared: nothing).
    """
    rest: list[str] = []
    names: list[str] | None = None
    in_names = False
    for item in (s.strip() for s in spec.split(",")):
        key, eq, value = item.partition("=")
        if eq and key.strip() == KEY:
            names, in_names = (names or []), True
            if value.strip():
                names.append(value.strip())
        elif in_names and not eq and item:
            names.append(item)
        else:
            in_names = False
            rest.append(item)
    if names is None:
        return spec, None
    if not names:
        raise UserError(f"'{arg}': write MODEL::trained-on=FAMILIES, e.g. net.pt::trained-on=fonts,noise "
                        "(or trained-on=none)")
    declared = "" if [n.lower() for n in names] == ["none"] else ",".join(names)
    convention = ",".join(r for r in rest if r)
    return convention or None, declared
