"""Accounts, tokens and prices of the simulated service.

Money is kept in integer micro-dollars so that charging and refunding many
jobs never drifts by a float rounding error; it is shown as USD floats.
"""

from __future__ import annotations

from dataclasses import dataclass

MICROS_PER_USD = 1_000_000

# Invented prices: RunComfy's real per-image prices for Nano Banana 2 are not
# public in our sources. They only need to differ by resolution, so a client's
# cost display and balance checks can be tested.
PRICES_USD: dict[str, float] = {"0.5K": 0.06, "1K": 0.08, "2K": 0.12, "4K": 0.16}
BASE_RESOLUTION = "1K"
PRICING_NOTE = (
    "Per output image, by resolution: 0.5K $0.06, 1K $0.08, 2K $0.12, 4K $0.16 "
    "(simulator prices, invented for testing)."
)


def usd_to_micros(usd: float) -> int:
    """Round a USD amount to whole micro-dollars."""
    return int(round(float(usd) * MICROS_PER_USD))


def micros_to_usd(micros: int) -> float:
    """Micro-dollars as a USD float, rounded so JSON shows 0.08 and not 0.08000000001."""
    return round(micros / MICROS_PER_USD, 6)


def price_micros(resolution: str, num_images: int) -> int:
    """What one accepted submit costs: per output image, by resolution."""
    return usd_to_micros(PRICES_USD[resolution]) * int(num_images)


@dataclass
class Account:
    """A RunComfy user. ``funds_micros`` is what was deposited; the balance is
    that minus the net charges of the account's jobs (see ``JobStore``), so a
    refund is simply a job that no longer counts."""

    name: str
    funds_micros: int
