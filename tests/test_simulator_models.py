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
from simhelpers import EDIT, T2I, TLS, api, catalog, error_of, finished_result, other_token, submit

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
    wrong = other_token(sim.token)
    with httpx.Client(base_url=sim.url, verify=TLS) as anonymous:
        rejected = anonymous.get(f"/v1/models/{T2I}", headers={"Authorization": f"Bearer {wrong}"})
        missing = anonymous.get(f"/v1/models/{T2I}")
        error_of(anonymous.get("/v1/models/google/nano-banana-9", headers={"Authorization": f"Bearer {sim.token}"}),
                 404, 400001)
        sim.configure(error_statuses={"400004": 400})
        error_of(anonymous.get(f"/v1/models/{T2I}", headers={"Authorization": f"Bearer {wrong}"}), 400, 400004)
    error_of(rejected, 401, 400004)
    error_of(missing, 401, 400004)
    assert wrong not in rejected.text and "profile" in rejected.json()["error_message"]
    assert [r.account for r in sim.requests(route="model")] == ["default", None, None, "default", None]


# -- the catalog list and a public catalog (issue 14) ------------------------------------------
def listing(sim: Any, token: str | None = None, **params: str) -> httpx.Response:
    with api(sim, token=token) as client:
        return client.get("/v1/models", params=params)


def test_the_catalog_lists_entries_with_search_category_and_paging(simulator: Any) -> None:
    everything = listing(simulator).json()
    assert everything["total"] == 2
    assert [entry["model_id"] for entry in everything["models"]] == [T2I, EDIT]
    assert everything["models"][0] == model_info(simulator, T2I)  # the same entry as GET /v1/models/{id}
    assert "schema" not in everything["models"][0]
    assert [e["model_id"] for e in listing(simulator, search="EDIT").json()["models"]] == [EDIT]
    assert [e["model_id"] for e in listing(simulator, search="nano banana 2 text").json()["models"]] == [T2I]
    assert listing(simulator, category="image-to-image").json() == {"models": [model_info(simulator, EDIT)], "total": 1}
    assert listing(simulator, search="flux").json() == {"models": [], "total": 0}
    page = listing(simulator, limit="1", offset="1").json()
    assert page["total"] == 2 and [e["model_id"] for e in page["models"]] == [EDIT]
    assert listing(simulator, include_schema="true").json()["models"][1]["schema"] == catalog.input_schema(EDIT)
    for bad in ({"limit": "0"}, {"limit": "101"}, {"offset": "-1"}, {"limit": "ten"}):
        refused = error_of(listing(simulator, **bad), 422, 422001)
        assert refused["detail"][0]["loc"][0] == "query" and refused["detail"][0]["loc"][1] in bad
    assert [r.route for r in simulator.requests()][-1] == "models" and not simulator.jobs


def test_the_catalog_needs_a_token_unless_public(simulator: Any) -> None:
    sim = simulator
    wrong = other_token(sim.token)
    with httpx.Client(base_url=sim.url, verify=TLS) as anonymous:
        error_of(anonymous.get("/v1/models"), 401, 400004)
        error_of(anonymous.get(f"/v1/models/{T2I}"), 401, 400004)
        sim.configure(public_catalog=True)
        assert anonymous.get("/v1/models").json()["total"] == 2
        assert anonymous.get(f"/v1/models/{T2I}").json()["model_id"] == T2I
        assert anonymous.get(f"/v1/models/{T2I}", headers={"Authorization": f"Bearer {wrong}"}).status_code == 200
        error_of(anonymous.get("/v1/models/google/nano-banana-9"), 404, 400001)
        # the rest of the API still refuses
        error_of(anonymous.post(f"/v1/models/{T2I}", json={"prompt": "p"}), 401, 400004)
        error_of(anonymous.get("/v1/requests/0f0e0d0c-0000-4000-8000-000000000001/status"), 401, 400004)
    assert listing(sim).status_code == 200
    assert [r.account for r in sim.requests(route="model")][-2:] == [None, None]
    assert sim.requests(route="models")[-1].account == "default"  # logged when the token is known
    assert not sim.jobs
