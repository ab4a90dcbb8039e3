"""What will this job cost, and where does that figure come from: the pack's one answer.

The price badge, the daily spend limit, a batch's total and the balance check
all ask ``estimate_job``, so the figure a user sees is the figure that is
counted. Pure: the caller brings RunComfy's model info and what the journal
knows (``Billed``, from ``Journal.last_billed``).

In order of trust:

1. ``listed``: the model info states a price for this resolution
   (``prices.read_pricing``; e.g. a note of ``<resolution> $<price>`` pairs);
2. ``billed``: RunComfy reported the cost of a completed job of this account,
   model and resolution: that job's cost per image, most recent first;
3. ``base``: ``base_price_usd`` per output image. RunComfy's real note is free
   text, likely "varies by resolution": the base price is then a floor, still
   better than counting $0 against a limit;
4. ``unknown``: nothing is known; the badge says ``price ?`` and, under a
   daily limit, the job is refused (never counted as $0).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, Sequence

from .prices import base_price_per_image, mentions_resolution, read_pricing

__all__ = ["BASE", "BILLED", "Billed", "Estimate", "LISTED", "UNKNOWN", "estimate_job"]

LISTED, BILLED, BASE, UNKNOWN = "listed", "billed", "base", "unknown"


@dataclass(frozen=True)
class Billed:
    """A completed job's cost as RunComfy reported it (``Journal.last_billed``)."""

    cost_usd: float
    num_images: int
    finished_at: datetime

    @property
    def per_image_usd(self) -> float:
        return self.cost_usd / self.num_images


@dataclass(frozen=True)
class Estimate:
    """The estimated cost of one job (``usd``; None: unknown) and where it comes from (``source``)."""

    usd: float | None
    source: str
    resolution: str
    num_images: int
    per_image_usd: float | None = None
    billed_at: datetime | None = None
    """For ``billed``: when the job whose cost is used finished (UTC)."""
    varies_by_resolution: bool = False
    """For ``base``: RunComfy's note says the price depends on resolution."""
    pricing_note: str | None = None
    reason: str | None = None
    """Why no price is listed for this resolution (None for ``listed``)."""

    @property
    def known(self) -> bool:
        return self.usd is not None

    def describe(self) -> str:
        """One line for messages: the figure and where it comes from."""
        if self.usd is None:
            return "price unknown"
        if self.source == BILLED and self.billed_at is not None:
            return (f"≈ ${self.usd:.2f}, as RunComfy billed for {self.resolution} on "
                    f"{self.billed_at.astimezone().strftime('%m-%d')}")
        if self.source == BASE:
            return f"≈ ${self.usd:.2f} at the base price ${self.per_image_usd:.2f}/image"
        return f"≈ ${self.usd:.2f}"


def estimate_job(
    info: Mapping[str, Any] | None,
    resolutions: Sequence[str],
    resolution: str,
    num_images: int,
    billed: Billed | None = None,
    *,
    unknown_reason: str | None = None,
) -> Estimate:
    """The estimate for ``num_images`` images at ``resolution``; see the module docstring.

    ``info`` None means RunComfy's model info could not be had (``unknown_reason`` says why).
    """
    note = info.get("pricing_note") if info is not None else None
    note = note if isinstance(note, str) and note.strip() else None
    common = {"resolution": resolution, "num_images": num_images, "pricing_note": note}
    reason = unknown_reason
    if info is not None:
        pricing = read_pricing(info, resolutions)
        listed = pricing.estimate(resolution, num_images)
        if listed is not None:
            return Estimate(listed, LISTED, per_image_usd=pricing.per_image_usd[resolution], **common)
        reason = pricing.reason
    if num_images < 1:
        return Estimate(None, UNKNOWN, reason=reason, **common)
    if billed is not None and billed.num_images > 0 and billed.cost_usd > 0:
        per_image = billed.per_image_usd
        return Estimate(round(per_image * num_images, 6), BILLED, per_image_usd=round(per_image, 6),
                        billed_at=billed.finished_at, reason=reason, **common)
    base = base_price_per_image(info) if info is not None else None
    if base is not None:
        return Estimate(round(base * num_images, 6), BASE, per_image_usd=base,
                        varies_by_resolution=mentions_resolution(note), reason=reason, **common)
    return Estimate(None, UNKNOWN, reason=reason or "RunComfy states no price for this model", **common)
