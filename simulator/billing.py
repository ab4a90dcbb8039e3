"""Accounts, tokens and prices of the simulated service.

Money is kept in integer micro-dollars so that charging and refunding many
jobs never drifts by a float rounding error; it is shown as USD floats.
"""

from __future__ import annotations

from dataclasses import dataclass

MICROS_PER_USD = 1_000_000

# Invented prices: RunComfy's real per-image prices for Nano Banana 2 are not
# public in our sources. They only need to differ by resolution, so a client's
# cost display and balance checks can be tested. ``Options.pricing`` picks how
# the model route states them; a submit always bills what the route implies.
PRICES_USD: dict[str, float] = {"0.5K": 0.06, "1K": 0.08, "2K": 0.12, "4K": 0.16}
FLAT_PRICE_USD = 0.10  # unlike any by-resolution price, so a test can tell which was used
PRICING_NOTE = (
    "Per output image, by resolution: 0.5K $0.06, 1K $0.08, 2K $0.12, 4K $0.16 "
    "(simulator prices, invented for testing)."
)
PLAIN_NOTE = (
    "Billed per output image; the price varies by resolution (simulator note, prices invented for testing)."
)
_MODEL_PRICING: dict[str, dict[str, object]] = {
    # Options.pricing -> the price fields of GET /v1/models/{model_id}
    "by_resolution": {"base_price_usd": PRICES_USD["1K"], "price_unit": "output", "pricing_note": PRICING_NOTE},
    "flat": {"base_price_usd": FLAT_PRICE_USD, "price_unit": "output", "pricing_note":
             f"Per output image, any resolution: ${FLAT_PRICE_USD:.2f} (simulator price, invented for testing)."},
    # RunComfy's catalog states a base price and a note in words (runcomfy-api.md): the default.
    "plain": {"base_price_usd": PRICES_USD["1K"], "price_unit": "output", "pricing_note": PLAIN_NOTE},
    "prose": {"base_price_usd": PRICES_USD["1K"], "price_unit": "output", "pricing_note":
              ("Priced per generated image; larger outputs cost more. See your RunComfy dashboard for current rates "
               "(simulator note, prices invented for testing).")},
    "base_only": {"base_price_usd": PRICES_USD["1K"], "price_unit": "output"},
    "missing": {},
}


def usd_to_micros(usd: float) -> int:
    """Round a USD amount to whole micro-dollars."""
    return int(round(float(usd) * MICROS_PER_USD))


def micros_to_usd(micros: int) -> float:
    """Micro-dollars as a USD float, rounded so JSON shows 0.08 and not 0.08000000001."""
    return round(micros / MICROS_PER_USD, 6)


def price_micros(resolution: str, num_images: int, pricing: str = "by_resolution") -> int:
    """What one accepted submit costs: per output image, by resolution unless flat."""
    return usd_to_micros(FLAT_PRICE_USD if pricing == "flat" else PRICES_USD[resolution]) * int(num_images)


def model_pricing(pricing: str) -> dict[str, object]:
    """The price fields the model route answers with under ``Options.pricing``."""
    return dict(_MODEL_PRICING[pricing])


@dataclass
class Account:
    """A RunComfy user. ``funds_micros`` is what was deposited; the balance is
    that minus the net charges of the account's jobs (see ``JobStore``), so a
    refund is simply a job that no longer counts."""

    name: str
    funds_micros: int
    user_id: str = ""
    """What ``GET /api/auth/me`` calls ``id`` (derived from the name when not given)."""
    email: str | None = None

    def __post_init__(self) -> None:
        self.user_id = self.user_id or f"usr_sim_{self.name}"
