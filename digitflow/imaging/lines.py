"""Group digit blobs into text lines, each read left to right."""

from __future__ import annotations

import numpy as np

from digitflow.imaging.blobs import Blob

# A digit continues a line when its centre is this close (in digit heights) to the line's last.
_LINE_TOLERANCE = 0.6


def group_lines(blobs: list[Blob]) -> list[list[Blob]]:
    """Lines of blobs, top to bottom, each left to right; tolerant of a few degrees of skew."""
    if not blobs:
        return []
    height = float(np.median([b.height for b in blobs]))
    lines: list[list[Blob]] = []
    # Walking left to right and following each line's most recent digit lets a line drift
    # up or down across the page, as it does on a scan rotated by a degree or two.
    for blob in sorted(blobs, key=_centre_x):
        centre = _centre_y(blob)
        distances = [abs(_centre_y(line[-1]) - centre) for line in lines]
        best = int(np.argmin(distances)) if distances else -1
        if best >= 0 and distances[best] <= _LINE_TOLERANCE * height:
            lines[best].append(blob)
        else:
            lines.append([blob])
    return sorted(lines, key=lambda line: float(np.median([_centre_y(b) for b in line])))


def _centre_x(blob: Blob) -> float:
    return (blob.x0 + blob.x1) / 2.0


def _centre_y(blob: Blob) -> float:
    return (blob.y0 + blob.y1) / 2.0
