"""Rules for values the pack's nodes cannot take as Comfy's node holds them.

Seed: Comfy's node takes 0…2^64−1; RunComfy's model (Gemini) takes a signed
32-bit seed, so the pack's seed widget ends at 2^31−1 (``client/limits.py``).
A larger seed becomes ``seed mod 2^31``: the same Comfy seed always gives the
same RunComfy seed, seeds in range stay as they are, and the report line says
both numbers.

Aspect ratio: Comfy's V2 node adds 1:4, 4:1, 1:8 and 8:1, which RunComfy's
schema does not list. The nearest listed ratio by the logarithm of width/height
replaces it (a 1:8 strip becomes 9:16, the tallest RunComfy offers): on a log
scale 2:1 is as far from 1:1 as 1:2 is, so tall and wide are treated alike.
"""

from __future__ import annotations

import math
from typing import Sequence

from ..client.limits import SEED_MAX, SEED_MIN

SEED_MODULUS = SEED_MAX + 1  # 2^31


def seed_in_range(seed: int) -> int:
    """Comfy's seed as the pack's: unchanged within 0…2^31−1, else modulo 2^31."""
    if seed < SEED_MIN:
        raise ValueError(f"seed {seed} is negative; Comfy's seeds start at 0")
    return seed % SEED_MODULUS


def ratio_of(aspect_ratio: str) -> float | None:
    """``'16:9'`` -> 1.777…; None for ``auto`` or anything that is not W:H."""
    width, sep, height = aspect_ratio.partition(":")
    try:
        value = float(width) / float(height) if sep else None
    except (ValueError, ZeroDivisionError):
        return None
    return value if value and value > 0 else None


def nearest_aspect_ratio(aspect_ratio: str, offered: Sequence[str]) -> str | None:
    """The offered W:H ratio nearest to ``aspect_ratio`` on a log scale (first one on a tie)."""
    wanted = ratio_of(aspect_ratio)
    if wanted is None:
        return None
    candidates = [(abs(math.log(ratio / wanted)), name) for name in offered if (ratio := ratio_of(name))]
    return min(candidates, key=lambda pair: pair[0])[1] if candidates else None
