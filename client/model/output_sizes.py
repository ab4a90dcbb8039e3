"""What size Nano Banana 2 makes for a resolution and aspect ratio, and whether a result has it.

Users of other packs saw 2K and 4K requests come back at the 1K size
(1376x768 for 16:9): paid for, but not what was asked. The pack cannot fix
that, but it can say so plainly instead of letting it pass.

The table is Gemini 3.1 Flash Image's own (the model behind RunComfy's
``google/nano-banana-2``), as public clients list it: at 1K, 16:9 is
1376x768, 21:9 1584x672, 4:5 928x1152; 0.5K (Google's "512") is exactly
half, 2K double and 4K four times (a 16:9 2K result was seen at 2752x1536;
the 4K 16:9 size is 5504x3072). Sizes are multiples of 16, so a shape is
never exactly its ratio; "the model's rounding" here is a few pixels per side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SIZES_1K", "SCALE", "SizeCheck", "check_size", "expected_size"]

# (width, height) at 1K for every aspect ratio Gemini 3.1 Flash Image supports
# (RunComfy's schema offers the first ten; 1:4, 4:1, 1:8 and 8:1 are Gemini's extra ones).
SIZES_1K: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "2:3": (848, 1264),
    "3:2": (1264, 848),
    "3:4": (896, 1200),
    "4:3": (1200, 896),
    "4:5": (928, 1152),
    "5:4": (1152, 928),
    "9:16": (768, 1376),
    "16:9": (1376, 768),
    "21:9": (1584, 672),
    "1:4": (512, 2048),
    "4:1": (2048, 512),
    "1:8": (384, 3072),
    "8:1": (3072, 384),
}
SCALE: dict[str, float] = {"0.5K": 0.5, "1K": 1.0, "2K": 2.0, "4K": 4.0}
# A side may be this far off the table and still be the model's size (rounding to 16 px, an encoder's crop).
_TOLERANCE_PX, _TOLERANCE_SHARE = 16, 0.02


def expected_size(resolution: str, aspect_ratio: str) -> tuple[int, int] | None:
    """The model's (width, height) for these settings; None when the table does not say (e.g. ``auto``)."""
    if resolution not in SCALE or aspect_ratio not in SIZES_1K:
        return None
    width, height = SIZES_1K[aspect_ratio]
    return round(width * SCALE[resolution]), round(height * SCALE[resolution])


def _close(got: tuple[int, int], want: tuple[int, int]) -> bool:
    return all(abs(g - w) <= max(_TOLERANCE_PX, _TOLERANCE_SHARE * w) for g, w in zip(got, want))


def _resolution_of(size: tuple[int, int]) -> str:
    """The resolution whose pixel count is nearest ``size``'s (each is 4x the one below)."""
    pixels = size[0] * size[1]
    return min(SCALE, key=lambda name: abs(math.log(pixels / (1024 * 1024 * SCALE[name] ** 2))))


def _ratio_of(size: tuple[int, int]) -> str:
    """The supported aspect ratio nearest ``size``'s shape."""
    shape = math.log(size[0] / size[1])
    return min(SIZES_1K, key=lambda name: abs(math.log(SIZES_1K[name][0] / SIZES_1K[name][1]) - shape))


def _what_it_is(size: tuple[int, int]) -> str:
    """What a size is in the model's terms: "the 1K 16:9 size", or roughly."""
    resolution, ratio = _resolution_of(size), _ratio_of(size)
    exact = expected_size(resolution, ratio)
    if exact is not None and _close(size, exact):
        return f"the {resolution} {ratio} size"
    return f"about {resolution} {ratio}"


@dataclass(frozen=True)
class SizeCheck:
    """One result image's size against the request: ``matches``, and the words for ``info``."""

    matches: bool
    asked: str  # "2K 16:9", or "2K, ratio auto"
    got: tuple[int, int]
    expected: tuple[int, int] | None
    is_like: str  # what the got size is in the model's terms

    def describe(self) -> str:
        got = f"{self.got[0]}×{self.got[1]}"
        if self.matches:
            return f"asked {self.asked}, got {got}"
        want = f", not the {self.expected[0]}×{self.expected[1]} Nano Banana 2 makes for that" if self.expected else ""
        return f"asked {self.asked}, got {got}{want} ({self.is_like})"


def check_size(resolution: str, aspect_ratio: str, got: tuple[int, int]) -> SizeCheck:
    """Whether ``got`` is the model's size for ``resolution`` and ``aspect_ratio``, within its rounding.

    With ``auto`` (or a ratio the table lacks) the shape is the model's
    choice, so only the resolution is checked: the pixel count must be that
    resolution's, not one of the others (each is 4x the one below).
    """
    expected = expected_size(resolution, aspect_ratio)
    if expected is not None:
        return SizeCheck(_close(got, expected), f"{resolution} {aspect_ratio}", got, expected, _what_it_is(got))
    matches = resolution not in SCALE or _resolution_of(got) == resolution
    return SizeCheck(matches, f"{resolution}, ratio {aspect_ratio}", got, None, _what_it_is(got))
