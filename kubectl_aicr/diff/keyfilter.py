"""What a diff compares: :class:`DiffOptions` (the flags) and :class:`KeyFilter`, which applies them to paths.

A path is ``TYPE/SUBTYPE/KEY``. It is *out of scope* when ``only`` is given and names neither its type nor its
subtype; it is *hidden* when a rule of :mod:`kubectl_aicr.diff.rules` covers it (volatile unless
``include_volatile``, identity with ``ignore_identity``) or an ``ignore`` pattern matches it. Hidden differences are
counted (``ignored``), never shown.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Mapping, Optional, Pattern

from collector.keys import KeyRule, compile_keys
from collector.model import Scalar
from kubectl_aicr.diff.rules import IDENTITY_RULES, VOLATILE_RULES


@dataclass(frozen=True)
class DiffOptions:
    """What to compare.

    ``ignore``: ``fnmatch`` patterns on ``Type/subtype/key``. A pattern that also matches ``Type/subtype/*``
    (e.g. ``OS/sysctl/*`` or ``SystemD/*``) hides that whole subtype: its appearance, disappearance and status.
    ``only``: ``TYPE`` or ``TYPE/SUBTYPE`` (``fnmatch`` patterns); when given, nothing else is compared, not even
    metadata.
    """

    include_volatile: bool = False
    ignore_identity: bool = False
    ignore: tuple[str, ...] = ()
    only: tuple[str, ...] = ()


class KeyFilter:
    """Decides which paths are out of scope (``only``) or hidden (volatile, identity, ``ignore``).
    Caches the rules' patterns per subtype."""

    def __init__(self, options: DiffOptions) -> None:
        self.options = options
        rules: list[KeyRule] = []
        if not options.include_volatile:
            rules.extend(VOLATILE_RULES)
        if options.ignore_identity:
            rules.extend(IDENTITY_RULES)
        self._rules = rules
        self._user = compile_keys(options.ignore)
        self._only = [(only.split("/", 1) + [""])[:2] for only in options.only]
        self._per_subtype: dict[tuple[str, str], tuple[Optional[Pattern[str]], str]] = {}

    # -- scope (--only)
    def type_in_scope(self, type_: str) -> bool:
        return not self._only or any(fnmatch.fnmatchcase(type_, t) for t, _ in self._only)

    def subtype_in_scope(self, type_: str, subtype: str) -> bool:
        return not self._only or any(
            fnmatch.fnmatchcase(type_, t) and (not s or fnmatch.fnmatchcase(subtype, s)) for t, s in self._only
        )

    # -- hiding
    def _user_hides(self, path: str) -> bool:
        return self._user is not None and self._user.match(path) is not None

    def hides_measurement(self, type_: str) -> bool:
        return self._user_hides(type_) or self._user_hides(f"{type_}/*") or self._user_hides(f"{type_}/*/*")

    def hides_subtype(self, type_: str, subtype: str) -> bool:
        return self._user_hides(f"{type_}/{subtype}") or self._user_hides(f"{type_}/{subtype}/*")

    def _compiled(self, type_: str, subtype: str) -> tuple[Optional[Pattern[str]], str]:
        got = self._per_subtype.get((type_, subtype))
        if got is None:
            rule_keys = (key for rule in self._rules if rule.applies_to(type_, subtype) for key in rule.keys)
            got = (compile_keys(rule_keys), f"{type_}/{subtype}/")
            self._per_subtype[(type_, subtype)] = got
        return got

    def hides_key(self, type_: str, subtype: str, key: str) -> bool:
        rule_re, prefix = self._compiled(type_, subtype)
        if rule_re is not None and rule_re.match(key):
            return True
        return self._user is not None and self._user.match(prefix + key) is not None

    def visible_keys(self, type_: str, subtype: str, data: Mapping[str, Scalar]) -> list[str]:
        return [key for key in data if not self.hides_key(type_, subtype, key)]

    @property
    def hides_volatile(self) -> bool:
        return not self.options.include_volatile
