"""What the next run will cost, read from RunComfy's model info. Pure: no I/O.

``GET /v1/models/{model_id}`` answers ``base_price_usd``, ``price_unit`` and a
free-text ``pricing_note``. RunComfy documents the fields but not the wording
of the note, and Nano Banana 2's real prices depend on resolution at Google.
A wrong estimate on a paid node is worse than none, so this module reads only
what it can read unambiguously and otherwise says the price is unknown (the
editor shows ``price ?``). What it accepts:

1. ``price_unit`` must mean "per output image": ``output`` or ``image``
   (any case, plural, ``per`` in front, ``_``/``-`` as spaces, e.g.
   ``per output image``). A price per second, request or megapixel cannot be
   turned into a price for ``num_images`` images.
2. A note that mentions other terms (``input``, ``reference``, ``extra``,
   ``additional``, ``surcharge``, ``plus``, ``minimum``, ``discount``,
   ``token``, ``search``, ``per second``/``request``/``run``/``call``,
   ``up to``, ``from``, ``starting``) is not read: the cost would depend on
   something the widgets do not show, or the listed figure is a bound, not a
   price.
3. Per resolution: every ``<resolution> $<price>`` pair in the note (a colon,
   ``=``, or dash between them is allowed, e.g. ``4K: $0.16``) gives that
   resolution's price per image. Read only when every dollar amount in the note
   belongs to such a pair, no resolution is given two different prices, and
   ``base_price_usd`` (when present) is one of the listed prices. A resolution
   the note does not price stays unknown.
4. Flat: with no pairs, ``base_price_usd`` is the price of every image at
   every resolution, but only when the note does not mention resolution or
   size at all (``0.5K``..``4K``, ``resolution``, ``megapixel``, ``MP``,
   ``HD``, ``1024x1024``...) or says outright that it does not matter ("any
   resolution", "all sizes", "regardless of resolution"), hints at no
   variation ("larger ... more", "varies", "depends"), and names no dollar
   amount other than the base price. An empty or missing note counts as
   "nothing suggests otherwise".
5. Prices must be positive, finite numbers (a JSON number or a decimal string).

The estimate for a run is price per image × ``num_images``, rounded to
micro-dollars.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

__all__ = ["Pricing", "base_price_per_image", "mentions_resolution", "read_pricing"]

_PER_OUTPUT_UNITS = {"output", "outputs", "image", "images", "output image", "output images"}
_OTHER_TERMS = re.compile(
    r"\b(inputs?|references?|extra|additional|surcharges?|plus|minimum|discount(ed)?|tokens?|"
    r"search|per\s+(second|request|run|call)|up\s+to|from|starting)\b|\+",
    re.IGNORECASE,
)
_RESOLUTION = r"(?<![\w.])(\d+(?:\.\d+)?)\s*[kK]\b"
_DOLLARS = r"\$\s*(\d+(?:\.\d+)?)"
_RESOLUTION_PRICE = re.compile(_RESOLUTION + r"\s*(?:[:=]|-|\u2013|\u2014)?\s*" + _DOLLARS)
_DOLLAR_AMOUNT = re.compile(_DOLLARS)
_ANY_SIZE = re.compile(
    r"\b(any|all|every|regardless\s+of(\s+the)?)\s+(resolutions?|sizes?)\b|\bflat\b", re.IGNORECASE
)
_VARIATION = re.compile(
    r"\b(larger|bigger|higher|smaller|lower|more|less|vary|varies|varying|depends?|depending|differs?)\b",
    re.IGNORECASE,
)
_SIZE_WORDS = re.compile(
    _RESOLUTION + r"|\bresolutions?\b|\bmegapixels?\b|\bMP\b|\bHD\b|\b\d{3,5}\s*[x\u00d7]\s*\d{3,5}\b|\bsizes?\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Pricing:
    """Price per output image by resolution, as far as it is known.

    ``per_image_usd`` holds only the resolutions whose price could be read;
    ``reason`` says why the others (or all) are unknown, in words for the user.
    """

    per_image_usd: Mapping[str, float] = field(default_factory=dict)
    basis: str | None = None
    reason: str | None = None

    @property
    def known(self) -> bool:
        """True when at least one resolution has a price."""
        return bool(self.per_image_usd)

    def estimate(self, resolution: str, num_images: int) -> float | None:
        """The cost of one run, or None when it cannot be known."""
        price = self.per_image_usd.get(resolution)
        if price is None or num_images < 1:
            return None
        return round(price * num_images, 6)


def _unknown(reason: str) -> Pricing:
    return Pricing(reason=reason)


def _positive_price(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def _is_per_output(unit: Any) -> bool:
    if not isinstance(unit, str):
        return False
    words = re.sub(r"[_\-\s]+", " ", unit).strip().lower()
    return words.removeprefix("per ") in _PER_OUTPUT_UNITS


def _resolution_name(number: str) -> str:
    return f"{number}K"


def read_pricing(info: Mapping[str, Any], resolutions: Sequence[str]) -> Pricing:
    """Read the price per image for each of ``resolutions`` from a model-info answer."""
    unit = info.get("price_unit")
    if not _is_per_output(unit):
        return _unknown(f"RunComfy prices this model per {unit!r}, not per output image" if unit
                        else "RunComfy's model info gives no price unit")
    note = info.get("pricing_note")
    if note is None:
        note = ""
    if not isinstance(note, str):
        return _unknown("RunComfy's pricing note is not text")
    base = info.get("base_price_usd")
    base_price = _positive_price(base)
    if base is not None and base_price is None:
        return _unknown("RunComfy's base price is not a positive number")
    if _OTHER_TERMS.search(note):
        return _unknown("RunComfy's pricing note has terms the pack cannot read")

    pairs = [(_resolution_name(res), _positive_price(price)) for res, price in _RESOLUTION_PRICE.findall(note)]
    if pairs:
        return _by_resolution(pairs, note, base_price, resolutions)
    if _VARIATION.search(note) or _SIZE_WORDS.search(_ANY_SIZE.sub("", note)):
        return _unknown("RunComfy's pricing note depends on resolution in a way the pack cannot read")
    if base_price is None:
        return _unknown("RunComfy's model info gives no price")
    if any(_positive_price(amount) != base_price for amount in _DOLLAR_AMOUNT.findall(note)):
        return _unknown("RunComfy's pricing note names another price than the base price")
    return Pricing(per_image_usd={res: base_price for res in resolutions}, basis="flat per output image")


def _by_resolution(
    pairs: list[tuple[str, float | None]], note: str, base_price: float | None, resolutions: Sequence[str]
) -> Pricing:
    if len(_DOLLAR_AMOUNT.findall(note)) != len(pairs) or any(price is None for _, price in pairs):
        return _unknown("RunComfy's pricing note has prices the pack cannot attribute to a resolution")
    table: dict[str, float] = {}
    for resolution, price in pairs:
        assert price is not None
        if table.setdefault(resolution, price) != price:
            return _unknown(f"RunComfy's pricing note gives {resolution} two prices")
    if base_price is not None and base_price not in table.values():
        return _unknown("RunComfy's base price matches none of the prices in its pricing note")
    known = {res: table[res] for res in resolutions if res in table}
    missing = [res for res in resolutions if res not in table]
    if not known:
        return _unknown("RunComfy's pricing note prices none of this model's resolutions")
    reason = f"RunComfy's pricing note gives no price for {', '.join(missing)}" if missing else None
    return Pricing(per_image_usd=known, basis="per output image, by resolution", reason=reason)


def base_price_per_image(info: Mapping[str, Any]) -> float | None:
    """``base_price_usd`` when it is a positive price per output image, else None.

    Not a price for every resolution (``read_pricing`` decides that), but a
    figure RunComfy states: the floor of what one image costs.
    """
    if not _is_per_output(info.get("price_unit")):
        return None
    return _positive_price(info.get("base_price_usd"))


def mentions_resolution(note: Any) -> bool:
    """Whether a pricing note says the price depends on resolution or size (in any words)."""
    if not isinstance(note, str):
        return False
    return bool(_VARIATION.search(note) or _SIZE_WORDS.search(_ANY_SIZE.sub("", note)))
