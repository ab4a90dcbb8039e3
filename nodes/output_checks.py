"""Honest outputs: each result's size against what was asked, and images that are the same picture.

Both are notes, never errors: the images are paid for, and a user may well
want them anyway. But a 2K request that came back at the 1K size, or two
"different" images that are one picture twice (reported by users of other
packs), should be said plainly in ``info`` and on the node's status line
rather than discovered later.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from ..client.model.output_sizes import check_size
from .result_images import ResultImage


def size_notes(results: Sequence[ResultImage], asked: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(``info`` lines, status-line warnings) for the results' sizes against ``asked``'s
    ``resolution`` and ``aspect_ratio``; nothing when the request is not known (a collected job)."""
    resolution, ratio = asked.get("resolution"), asked.get("aspect_ratio", "auto")
    if not isinstance(resolution, str) or not results:
        return [], []
    checks = [check_size(resolution, str(ratio), (result.width, result.height)) for result in results]
    if all(check.matches for check in checks) and len({check.got for check in checks}) == 1:
        every = f" (all {len(checks)} images)" if len(checks) > 1 else ""
        return [f"size as asked: {checks[0].describe()}{every}"], []
    lines, warnings = [], []
    for number, check in enumerate(checks, start=1):
        if check.matches:
            lines.append(f"image {number} size as asked: {check.describe()}")
        else:
            warning = f"image {number} is not the size asked: {check.describe()}"
            lines.append(warning)
            warnings.append(warning)
    return lines, warnings


def duplicate_notes(images: torch.Tensor, results: Sequence[ResultImage]) -> list[str]:
    """One line per group of two or more results with the very same pixels (compared decoded,
    so the same picture in two encodings still counts)."""
    groups: list[list[int]] = []
    for index, result in enumerate(results):
        for group in groups:
            first = results[group[0]]
            if (first.width, first.height) == (result.width, result.height) and torch.equal(images[group[0]], images[index]):
                group.append(index)
                break
        else:
            groups.append([index])
    notes = []
    for group in (g for g in groups if len(g) > 1):
        numbers = [str(index + 1) for index in group]
        which = f"{', '.join(numbers[:-1])} and {numbers[-1]}"
        notes.append(f"images {which} are identical (same pixels): RunComfy returned one picture {len(group)} times")
    return notes


def output_notes(
    results: Sequence[ResultImage], images: torch.Tensor, asked: Mapping[str, Any]
) -> tuple[list[str], list[str]]:
    """Every honest-output note: (lines for ``info``, the ones the status line shows too)."""
    lines, warnings = size_notes(results, asked)
    duplicates = duplicate_notes(images, results)
    return lines + duplicates, warnings + duplicates
