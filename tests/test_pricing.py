"""Reading prices from RunComfy's model info: what is accepted, and every doubt that gives ``price ?``."""

from __future__ import annotations

import pytest

from packloader import pack_import

pricing = pack_import("client.pricing.prices")
billing = pack_import("simulator.billing")

RESOLUTIONS = ("0.5K", "1K", "2K", "4K")


def info(note: object = None, base: object = 0.08, unit: object = "output") -> dict:
    answer = {"model_id": "google/nano-banana-2/text-to-image", "price_unit": unit, "base_price_usd": base}
    if note is not None:
        answer["pricing_note"] = note
    return answer


def test_the_simulators_note_gives_a_price_per_resolution():
    read = pricing.read_pricing(info(billing.PRICING_NOTE, billing.PRICES_USD["1K"]), RESOLUTIONS)
    assert dict(read.per_image_usd) == billing.PRICES_USD
    assert read.basis == "per output image, by resolution" and read.reason is None
    for resolution, price in billing.PRICES_USD.items():
        for count in range(1, 5):
            assert read.estimate(resolution, count) == pytest.approx(price * count, abs=1e-9)
    assert read.estimate("4K", 3) == 0.48 and read.estimate("0.5K", 3) == 0.18  # rounded, no float dust


@pytest.mark.parametrize("note", [
    "0.5K: $0.06, 1K: $0.08, 2K: $0.12, 4K: $0.16",
    "0.5K=$0.06 1K=$0.08 2K=$0.12 4K=$0.16",
    "0.5K - $0.06; 1K \u2013 $0.08; 2K \u2014 $0.12; 4k $0.16.",
    "Per image. 0.5 K $0.06 / 1K $0.08 / 2K $0.12 / 4K $0.16",
])
def test_resolution_price_pairs_in_other_spellings(note):
    assert dict(pricing.read_pricing(info(note), RESOLUTIONS).per_image_usd) == billing.PRICES_USD


@pytest.mark.parametrize("unit", ["output", "Outputs", "image", "per image", "per_output_image", "output-images"])
def test_units_meaning_per_output_image(unit):
    assert pricing.read_pricing(info(billing.PRICING_NOTE, unit=unit), RESOLUTIONS).known


@pytest.mark.parametrize("note", [None, "", "Per output image.", "$0.08 per output image"])
def test_a_flat_price_when_nothing_mentions_resolution(note):
    read = pricing.read_pricing(info(note, base=0.08), RESOLUTIONS)
    assert dict(read.per_image_usd) == {resolution: 0.08 for resolution in RESOLUTIONS}
    assert read.basis == "flat per output image"
    assert read.estimate("4K", 4) == 0.32


def test_a_base_price_given_as_a_decimal_string_is_read():
    assert pricing.read_pricing(info("", base="0.08"), RESOLUTIONS).estimate("1K", 2) == 0.16


@pytest.mark.parametrize("answer, why", [
    (info(billing.PRICING_NOTE, unit="second"), "per 'second'"),
    (info(billing.PRICING_NOTE, unit="request"), "per 'request'"),
    (info(billing.PRICING_NOTE, unit="megapixel"), "per 'megapixel'"),
    (info(billing.PRICING_NOTE, unit=None), "no price unit"),
    (info("", base=None), "no price"),
    (info("", base=0), "not a positive number"),
    (info("", base=-0.08), "not a positive number"),
    (info("", base=True), "not a positive number"),
    (info("", base="cheap"), "not a positive number"),
    (info("", base=float("nan")), "not a positive number"),
    (info(42), "not text"),
    (info("Price depends on the output resolution."), "depends on resolution"),
    (info("$0.08 per image at 1024x1024"), "depends on resolution"),
    (info("$0.08 per image up to 4K"), "terms the pack cannot read"),
    (info("From $0.06 per image"), "terms the pack cannot read"),
    (info("1K $0.08, 4K $0.16, plus $0.01 per input image"), "terms the pack cannot read"),
    (info("1K $0.08 + $0.02 with web search"), "terms the pack cannot read"),
    (info("$0.10 per output image"), "another price"),
    (info("1K $0.08, 1K $0.09"), "two prices"),
    (info("1K $0.07, 2K $0.12", base=0.08), "matches none"),
    (info("1K $0.08, 2K $0.12, batch of four $0.40"), "cannot attribute"),
    (info("8K $0.30", base=0.30), "none of this model's resolutions"),
])
def test_doubt_means_unknown(answer, why):
    read = pricing.read_pricing(answer, RESOLUTIONS)
    assert not read.known and read.basis is None
    assert why in read.reason
    assert all(read.estimate(resolution, 1) is None for resolution in RESOLUTIONS)


def test_a_resolution_the_note_does_not_price_stays_unknown():
    read = pricing.read_pricing(info("1K $0.08, 2K $0.12"), RESOLUTIONS)
    assert read.estimate("1K", 2) == 0.16 and read.estimate("2K", 1) == 0.12
    assert read.estimate("4K", 1) is None and read.estimate("0.5K", 1) is None
    assert read.reason == "RunComfy's pricing note gives no price for 0.5K, 4K"


def test_an_estimate_needs_at_least_one_image():
    read = pricing.read_pricing(info(billing.PRICING_NOTE), RESOLUTIONS)
    assert read.estimate("1K", 0) is None and read.estimate("3K", 1) is None


@pytest.mark.parametrize("note, known", [
    ("Per output image, any resolution: $0.10.", True),
    ("Same price for all sizes.", True),
    ("Regardless of resolution, per image.", True),
    ("Priced per generated image; larger outputs cost more.", False),
    ("The price varies.", False),
    ("Any resolution; 4K images are billed twice.", False),
])
def test_a_note_saying_resolution_does_not_matter_is_flat_and_a_hint_of_variation_is_not(note, known):
    result = pricing.read_pricing({"base_price_usd": 0.10, "price_unit": "output", "pricing_note": note}, RESOLUTIONS)
    assert result.known is known
    if known:
        assert result.estimate("4K", 2) == pytest.approx(0.20)


# -- the one estimate (client/pricing/estimate.py) ---------------------------------------

estimate_module = pack_import("client.pricing.estimate")


def test_the_estimate_prefers_a_listed_price_then_what_was_billed_then_the_base_price():
    from datetime import datetime, timezone

    plain = info(billing.PLAIN_NOTE, base=0.08)
    billed = estimate_module.Billed(0.24, 2, datetime(2026, 12, 3, 12, tzinfo=timezone.utc))
    listed = estimate_module.estimate_job(info(billing.PRICING_NOTE, 0.08), RESOLUTIONS, "2K", 2, billed)
    assert (listed.source, listed.usd) == ("listed", pytest.approx(0.24))
    learned = estimate_module.estimate_job(plain, RESOLUTIONS, "2K", 3, billed)
    assert (learned.source, learned.usd, learned.per_image_usd) == ("billed", pytest.approx(0.36), pytest.approx(0.12))
    assert "billed for 2K on 12-0" in learned.describe()
    base = estimate_module.estimate_job(plain, RESOLUTIONS, "2K", 3)
    assert (base.source, base.usd, base.varies_by_resolution) == ("base", pytest.approx(0.24), True)
    assert base.pricing_note == billing.PLAIN_NOTE
    nothing = estimate_module.estimate_job({"price_unit": "output"}, RESOLUTIONS, "2K", 1)
    assert nothing.source == "unknown" and nothing.usd is None and nothing.reason
    per_second = estimate_module.estimate_job({"price_unit": "second", "base_price_usd": 0.02}, RESOLUTIONS, "1K", 1)
    assert per_second.usd is None  # a price per second is not a price per image
    offline = estimate_module.estimate_job(None, RESOLUTIONS, "2K", 1, billed, unknown_reason="offline")
    assert offline.source == "billed"  # what RunComfy billed is known without asking it
    assert estimate_module.estimate_job(None, RESOLUTIONS, "2K", 1, unknown_reason="offline").reason == "offline"
