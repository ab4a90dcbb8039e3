"""``GET /v1/models/{model_id}``: model info with prices, the token check (issue 7).

The client reads prices from here before a run and checks a token with it, so
the simulator answers with the documented fields, lets tests pick how prices
are stated (``Options.pricing``) and always bills what it states.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from packloader import pack_import
from simhelpers import EDIT, T2I, TLS, api, catalog, error_of, finished_result, submit

billing = pack_import("simulator.billing")

DEFAULT_NOTE = ("Per output image, by resolution: 0.5K $0.06, 1K $0.08, 2K $0.12, 4K $0.16 "
                "(simulator prices, invented for testing).")


def model_info(sim: Any, model_id: str = T2I, **params: str) -> dict[str, Any]:
    with api(sim) as client:
        answer = client.get(f"/v1/models/{model_id}", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def billed(sim: Any, resolution: str, num_images: int) -> float:
    """What /result reports as the cost of one job."""
    sim.script_next_jobs("failed")  # nothing to render; a failed job keeps its charge
    with api(sim) as client:
        request_id = submit(client, T2I, {"prompt": "p", "resolution": resolution, "num_images": num_images})
        return finished_result(sim, client, request_id, include_cost="true")["cost"]


def test_default_model_info_is_a_catalog_entry_with_a_note_in_plain_words(simulator: Any) -> None:
    """As RunComfy's catalog (runcomfy-api.md): model_id, display_name, categories, a base price
    per output image and a note in words; a submit is still billed by resolution."""
    info = model_info(simulator)
    assert info == {"model_id": T2I, "display_name": "Nano Banana 2 Text to Image", "categories": ["text-to-image"],
                    "base_price_usd": 0.08, "price_unit": "output", "pricing_note": billing.PLAIN_NOTE}
    assert "varies by resolution" in info["pricing_note"] and "$" not in info["pricing_note"]
    assert model_info(simulator, EDIT)["display_name"] == "Nano Banana 2 Edit"
    assert billed(simulator, "2K", 1) == pytest.approx(0.12) and billed(simulator, "0.5K", 2) == pytest.approx(0.12)


def test_the_structured_note_states_the_prices_a_submit_bills(simulator: Any) -> None:
    simulator.configure(pricing="by_resolution")
    info = model_info(simulator)
    assert info["pricing_note"] == DEFAULT_NOTE and info["base_price_usd"] == 0.08
    stated = {res: float(usd) for res, usd in re.findall(r"(\d(?:\.\d)?K) \$(\d+\.\d+)", info["pricing_note"])}
    assert stated == {"0.5K": 0.06, "1K": 0.08, "2K": 0.12, "4K": 0.16}
    for resolution, usd in stated.items():
        assert billed(simulator, resolution, 3) == pytest.approx(3 * usd)
    assert info["base_price_usd"] == stated["1K"]  # the default resolution


def test_a_simulator_that_reports_no_cost_leaves_it_out(simulator: Any) -> None:
    simulator.configure(report_cost=False)
    simulator.script_next_jobs("failed")
    with api(simulator) as client:
        request_id = submit(client, T2I, {"prompt": "p"})
        assert "cost" not in finished_result(simulator, client, request_id, include_cost="true")
    assert simulator.balance() < 100.0  # billed all the same


def test_model_info_with_schema_is_read_only(simulator: Any) -> None:
    info = model_info(simulator, EDIT, include_schema="true")
    assert info["schema"] == catalog.input_schema(EDIT) and info["model_id"] == EDIT
    assert "schema" not in model_info(simulator, EDIT, include_schema="false")
    assert not simulator.jobs and simulator.balance() == 100.0
    assert [r.route for r in simulator.requests()] == ["model", "model"]


@pytest.mark.parametrize(("pricing", "fields", "per_image"), [
    ("flat", {"base_price_usd": 0.10, "price_unit": "output"}, {"0.5K": 0.10, "4K": 0.10}),
    ("prose", {"base_price_usd": 0.08, "price_unit": "output"}, {"0.5K": 0.06, "4K": 0.16}),
    ("base_only", {"base_price_usd": 0.08, "price_unit": "output"}, {"0.5K": 0.06, "4K": 0.16}),
    ("missing", {}, {"0.5K": 0.06, "4K": 0.16}),
])
def test_pricing_variants_and_what_they_bill(simulator: Any, pricing: str, fields: dict[str, Any],
                                             per_image: dict[str, float]) -> None:
    simulator.configure(pricing=pricing)
    info = model_info(simulator)
    note = info.pop("pricing_note", None)
    assert info == {"model_id": T2I, "display_name": "Nano Banana 2 Text to Image", "categories": ["text-to-image"],
                    **fields}
    if pricing == "flat":
        assert note and "$0.10" in note and "any resolution" in note
    elif pricing == "prose":
        assert note and not re.search(r"\d", note)  # nothing a price parser could read
    else:
        assert note is None
    for resolution, usd in per_image.items():
        assert billed(simulator, resolution, 2) == pytest.approx(2 * usd)


def test_pricing_is_chosen_over_the_control_api(simulator: Any) -> None:
    sim = simulator
    control = httpx.Client(base_url=f"{sim.url}/_sim", headers={"Authorization": f"Bearer {sim.token}"}, verify=TLS)
    with control:
        assert control.post("/config", json={"pricing": "flat"}).json()["pricing"] == "flat"
        assert control.post("/config", json={"pricing": "cheap"}).status_code == 422
    assert model_info(sim)["base_price_usd"] == billing.FLAT_PRICE_USD


def test_model_info_is_the_token_check(simulator: Any) -> None:
    sim = simulator
    assert model_info(sim)["model_id"] == T2I
    wrong = "y" + sim.token[1:]
    with httpx.Client(base_url=sim.url, verify=TLS) as anonymous:
        rejected = anonymous.get(f"/v1/models/{T2I}", headers={"Authorization": f"Bearer {wrong}"})
        missing = anonymous.get(f"/v1/models/{T2I}")
        error_of(anonymous.get("/v1/models/google/nano-banana-9", headers={"Authorization": f"Bearer {sim.token}"}),
                 404, 400001)
        sim.configure(auth_error_status=400)
        error_of(anonymous.get(f"/v1/models/{T2I}", headers={"Authorization": f"Bearer {wrong}"}), 400, 400004)
    error_of(rejected, 401, 400004)
    error_of(missing, 401, 400004)
    assert wrong not in rejected.text and "profile" in rejected.json()["error_message"]
    assert [r.account for r in sim.requests(route="model")] == ["default", None, None, "default", None]
