"""What a node returns: its two outputs, plus what the editor shows about the paid run."""

from __future__ import annotations

from typing import Any, Mapping

import torch


def widget_values(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The plain values a run was made with (prompt, seed, resolution...), not images.

    The editor compares them with the node's widgets to show the last run's
    cost only while nothing changed since.
    """
    return {name: value for name, value in inputs.items() if isinstance(value, (str, int, float, bool))}


class NodeOutput(tuple):
    """``(images, info)``, unpacked like any node result, carrying a summary of the run.

    ComfyUI takes ``{"ui": ..., "result": ...}`` from a node to send ``ui`` to
    the editor (the ``executed`` event, also kept in the history); the pack's
    editor extension shows the reported cost and request id on the node from
    it. The summary holds nothing secret: model, request id, status, cost.
    """

    run: Mapping[str, Any]

    def __new__(cls, images: torch.Tensor, info: str, run: Mapping[str, Any]) -> "NodeOutput":
        output = super().__new__(cls, (images, info))
        output.run = dict(run)
        return output

    def for_comfyui(self) -> dict[str, Any]:
        """The node's return value for ComfyUI (a list per key: ComfyUI merges list runs)."""
        return {"ui": {"runcomfy_runs": [dict(self.run)]}, "result": tuple(self)}
