"""Switching a workflow from Comfy's own Nano Banana 2 nodes to the pack's nodes.

Pure data and rules, no ComfyUI, no HTTP: ``comfy_nodes`` holds what Comfy's
two node types look like in a saved workflow (read from Comfy's public
``comfy_api_nodes/nodes_gemini.py``), ``values`` the rules that turn a value
the pack cannot take as it is into one it can (seed range, nearest aspect
ratio), and ``plan`` builds, for one node, what the editor does: which of the
pack's nodes replaces it, every widget value, which link goes where, and each
thing that did not carry over. The editor asks for a plan through the route
in ``routes/switching.py``, so the browser and the tests share this one table.
"""

from .plan import SwitchPlan, build_plan, comfy_node_types

__all__ = ["SwitchPlan", "build_plan", "comfy_node_types"]
