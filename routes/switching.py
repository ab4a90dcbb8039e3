"""The switching routes: which node types can be switched, and the plan for one node.

``GET /runcomfy-nb2/switching`` names Comfy's node types the editor offers
"Switch to RunComfy" on; ``POST /runcomfy-nb2/switching/plan`` with
``{"node_type", "widgets_values", "linked_inputs", "output_links"}`` answers
the plan (``switching/plan.py``): the editor applies it and shows its report,
so the mapping lives in one place, tested without a browser. Nothing here
touches the account or spends money; the POST is guarded like the others
because it reads a body.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..switching.comfy_nodes import COMFY_NODES
from ..switching.plan import PlanError, build_plan
from .guard import Refusal, answer, read_json_object, refuse_cross_site
from .handlers import PREFIX, _guarded as guarded

# A workflow's prompt and system prompt travel in the body: allow far more than a settings change.
MAX_PLAN_BYTES = 1024 * 1024


class SwitchingRoutes:
    """``/switching`` and ``/switching/plan``."""

    def add_to(self, table: web.RouteTableDef) -> None:
        table.get(f"{PREFIX}/switching")(guarded(self.node_types))
        table.post(f"{PREFIX}/switching/plan")(guarded(self.plan))

    async def node_types(self, request: web.Request) -> web.Response:
        refuse_cross_site(request, changes_state=False)
        return answer({"node_types": {name: node.display_name for name, node in COMFY_NODES.items()}})

    async def plan(self, request: web.Request) -> web.Response:
        body = await read_json_object(request, max_bytes=MAX_PLAN_BYTES)
        node_type = body.get("node_type")
        values = body.get("widgets_values", [])
        linked = body.get("linked_inputs", [])
        outputs = body.get("output_links", [])
        if not isinstance(node_type, str) or not isinstance(values, (list, dict)):
            raise Refusal(400, 'Send {"node_type": "...", "widgets_values": [...]} (plus linked_inputs, output_links)')
        if not _all(linked, str) or not _all(outputs, int):
            raise Refusal(400, "linked_inputs must be input names and output_links link counts per output slot")
        try:
            plan = build_plan(node_type, values, linked, outputs)
        except PlanError as exc:
            raise Refusal(400, str(exc)) from None
        return answer({**plan.to_json(), "source_title": COMFY_NODES[node_type].display_name})


def _all(items: Any, kind: type) -> bool:
    return isinstance(items, list) and all(isinstance(item, kind) and not isinstance(item, bool) for item in items)
