"""Parsing and checking ``snapshot`` flags before anything is created in the cluster. Pure functions."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from kubectl_aicr.errors import InvalidInput

EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


@dataclass(frozen=True)
class Toleration:
    key: str | None
    operator: str  # Equal | Exists
    value: str | None
    effect: str | None

    def to_dict(self) -> dict[str, str]:
        d = {"operator": self.operator}
        if self.key:
            d["key"] = self.key
        if self.value is not None:
            d["value"] = self.value
        if self.effect:
            d["effect"] = self.effect
        return d


TOLERATE_ALL = Toleration(None, "Exists", None, None)


def check_label_key(key: str, flag: str) -> None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", prefix)):
        raise InvalidInput(f"{flag}: {key!r}: the prefix before '/' must be a DNS subdomain")
    if not name or len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        raise InvalidInput(f"{flag}: {key!r} is not a valid label key")


def parse_node_selectors(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``key=value`` pairs (repeatable) -> a nodeSelector map."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidInput(f"--node-selector: {item!r} must be key=value")
        key = key.strip()
        check_label_key(key, "--node-selector")
        if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            raise InvalidInput(f"--node-selector: {value!r} is not a valid label value")
        if key in out and out[key] != value:
            raise InvalidInput(f"--node-selector: {key!r} given twice with different values")
        out[key] = value
    return out


def parse_tolerations(items: tuple[str, ...] | list[str]) -> list[Toleration]:
    """``key=value:Effect`` (Equal) or ``key:Effect`` (Exists) or ``key`` (Exists, any effect);
    none given -> tolerate every taint."""
    if not items:
        return [TOLERATE_ALL]
    out: list[Toleration] = []
    for item in items:
        body, colon, effect = item.rpartition(":") if ":" in item else (item, "", "")
        if colon and effect not in EFFECTS:
            raise InvalidInput(f"--toleration: {item!r}: effect must be one of {', '.join(EFFECTS)}")
        key, eq, value = body.partition("=")
        if not key:
            raise InvalidInput(f"--toleration: {item!r}: a key is required (e.g. nvidia.com/gpu=present:NoSchedule)")
        check_label_key(key, "--toleration")
        if eq:
            if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
                raise InvalidInput(f"--toleration: {value!r} is not a valid taint value")
            out.append(Toleration(key, "Equal", value, effect or None))
        else:
            out.append(Toleration(key, "Exists", None, effect or None))
    return out


#: Longest duration accepted (a week): longer is a typo, and beyond ~292 years ``threading`` waits overflow.
MAX_DURATION_S = 7 * 24 * 3600.0


def parse_duration(text: str, flag: str = "--timeout") -> float:
    """Go-style durations (``90s``, ``5m``, ``1h30m``, ``500ms``) or plain seconds -> seconds (> 0, finite, at most
    :data:`MAX_DURATION_S`); ``nan``, ``inf`` and ``1e400`` are refused here, before anything is created."""
    s = text.strip()
    try:
        seconds = float(s)
    except ValueError:
        pos, seconds = 0, 0.0
        for m in _DURATION.finditer(s):
            if m.start() != pos:
                break
            n, unit = float(m.group(1)), m.group(2)
            seconds += n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
            pos = m.end()
        if pos != len(s) or not s:
            raise InvalidInput(f"{flag}: {text!r} is not a duration (examples: 90s, 5m, 1h30m)") from None
    if not math.isfinite(seconds):
        raise InvalidInput(f"{flag}: {text!r} is not a finite duration (examples: 90s, 5m, 1h30m)")
    if seconds <= 0:
        raise InvalidInput(f"{flag}: must be greater than zero")
    if seconds > MAX_DURATION_S:
        raise InvalidInput(f"{flag}: {text!r} is longer than the {MAX_DURATION_S / 3600:.0f}h maximum")
    return seconds


def check_name(value: str, flag: str, max_len: int = 40) -> str:
    """A DNS-1123 label short enough to take our run suffix."""
    if len(value) > max_len or not _DNS1123_LABEL.fullmatch(value):
        raise InvalidInput(
            f"{flag}: {value!r} must be lowercase letters, digits and '-', start and end alphanumeric, "
            f"at most {max_len} characters"
        )
    return value


def check_image(image: str) -> str:
    image = image.strip()
    if not image or any(c.isspace() for c in image) or image != image.strip("/:@"):
        raise InvalidInput(f"--image: {image!r} is not a valid image reference")
    return image
