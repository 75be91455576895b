"""SVG pictures drawn on the server (no JavaScript library, nothing fetched from the internet):
the devices map and the 2-D dialect map."""

from __future__ import annotations

import math
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 820, 480


def _nice_step(span: float) -> float:
    raw = span / 5
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def _mercator(lat: float, lon: float, zoom: float) -> tuple[float, float]:
    """Web Mercator pixel coordinates at ``zoom`` (256-pixel tiles)."""
    lat = max(-85.05, min(85.05, lat))
    n = 256 * 2**zoom
    x = (lon + 180.0) / 360.0 * n
    y = (1 - math.log(math.tan(math.radians(lat)) + 1 / math.cos(math.radians(lat))) / math.pi) / 2 * n
    return x, y


def devices_map(points: list[dict], tile_url: str = "", attribution: str = "") -> Markup:
    """The devices' deployments on a map: ``points`` with ``latitude``, ``longitude``, ``device_id``,
    ``colour``, ``info`` (hover text), ``current`` and ``label``. Without ``tile_url``: a plain
    latitude/longitude plot (equirectangular, aspect corrected for the mean latitude) with a grid;
    with it: Web Mercator tiles under the markers (the browser fetches them)."""
    if not points:
        return Markup(f'<svg class="devmap" width="{WIDTH}" height="120"><text x="20" y="60">No device has sent '
                      "its position yet (device.latitude / device.longitude in the recorder's config).</text></svg>")  # fmt: skip
    box = _box(points)
    parts = [f'<svg class="devmap" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}"><rect width="{WIDTH}" height="{HEIGHT}" fill="#f4f1ea"/>']  # fmt: skip
    proj = _tiles(parts, box, tile_url, attribution) if tile_url else _grid(parts, box)
    for p in sorted(points, key=lambda p: p.get("current", True)):
        parts.append(_marker(p, *proj(p["latitude"], p["longitude"])))
    parts.append("</svg>")
    return Markup("".join(parts))


PAD = 40


def _box(points: list[dict]) -> tuple[float, float, float, float]:
    """(lat0, lat1, lon0, lon1): the points' box, padded and widened to the view's aspect."""
    lats = [p["latitude"] for p in points]
    lons = [p["longitude"] for p in points]
    lat0, lat1, lon0, lon1 = min(lats), max(lats), min(lons), max(lons)
    span = max(lat1 - lat0, (lon1 - lon0) * math.cos(math.radians((lat0 + lat1) / 2)), 0.01)
    lat0, lat1 = (lat0 + lat1) / 2 - span * 0.6, (lat0 + lat1) / 2 + span * 0.6
    kx = math.cos(math.radians((lat0 + lat1) / 2))
    lon_span = span * 1.2 / max(kx, 0.05)
    return lat0, lat1, (lon0 + lon1) / 2 - lon_span / 2, (lon0 + lon1) / 2 + lon_span / 2


def _tiles(parts: list[str], box, tile_url: str, attribution: str):
    """Web Mercator tiles covering the view (the browser fetches them); returns the projection."""
    lat0, lat1, lon0, lon1 = box
    # the zoom at which the padded box fits
    zoom = max(0, min(18, int(math.log2(min((WIDTH - 2 * PAD) / (256 * (lon1 - lon0) / 360),
                                             (HEIGHT - 2 * PAD) / (256 * max(lat1 - lat0, 1e-6) / 180))))))  # fmt: skip
    cx, cy = _mercator((lat0 + lat1) / 2, (lon0 + lon1) / 2, zoom)
    ox, oy = cx - WIDTH / 2, cy - HEIGHT / 2
    for tx in range(int(ox // 256), int((ox + WIDTH) // 256) + 1):
        for ty in range(int(oy // 256), int((oy + HEIGHT) // 256) + 1):
            if 0 <= ty < 2**zoom:
                url = (
                    tile_url.replace("{z}", str(zoom))
                    .replace("{x}", str(tx % 2**zoom))
                    .replace("{y}", str(ty))
                )
                parts.append(f'<image href="{escape(url)}" x="{tx * 256 - ox:.1f}" y="{ty * 256 - oy:.1f}" '
                             'width="256" height="256"/>')  # fmt: skip
    if attribution:
        parts.append(f'<text x="{WIDTH - 6}" y="{HEIGHT - 6}" text-anchor="end" font-size="10">'
                     f"{escape(attribution)}</text>")  # fmt: skip

    def proj(lat, lon):
        x, y = _mercator(lat, lon, zoom)
        return x - ox, y - oy

    return proj


def _grid(parts: list[str], box):
    """A plain latitude/longitude grid (no tiles); returns the projection."""
    lat0, lat1, lon0, lon1 = box

    def proj(lat, lon):
        return (PAD + (lon - lon0) / (lon1 - lon0) * (WIDTH - 2 * PAD),
                HEIGHT - PAD - (lat - lat0) / (lat1 - lat0) * (HEIGHT - 2 * PAD))  # fmt: skip

    step = _nice_step(lat1 - lat0)
    v = math.ceil(lat0 / step) * step
    while v <= lat1:
        _, y = proj(v, lon0)
        parts.append(f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="4" y="{y + 4:.1f}" class="axis">{v:.4g}°N</text>')  # fmt: skip
        v += step
    step = _nice_step(lon1 - lon0)
    v = math.ceil(lon0 / step) * step
    while v <= lon1:
        x, _ = proj(lat0, v)
        parts.append(f'<line y1="{PAD}" y2="{HEIGHT - PAD}" x1="{x:.1f}" x2="{x:.1f}" class="grid"/>'
                     f'<text x="{x:.1f}" y="{HEIGHT - 12}" class="axis" text-anchor="middle">{v:.4g}°E</text>')  # fmt: skip
        v += step
    parts.append(f'<text x="{WIDTH - PAD}" y="{PAD - 10}" text-anchor="end" class="axis">plain latitude/longitude '
                 "plot (no map tiles: serve.tile_url is not set)</text>")  # fmt: skip
    return proj


def _marker(p: dict, x: float, y: float) -> str:
    current = p.get("current", True)
    r = 9 if current else 6
    cls = "device-marker" if current else "device-marker past"
    return (f'<g class="{cls}" data-device="{escape(p["device_id"])}" data-info="{escape(p["info"])}">'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{p["colour"]}" stroke="#222" stroke-width="1.5"'
            f"{'' if current else ' fill-opacity=0.45'}/><title>{escape(p['info'])}</title>"
            f'<text x="{x + r + 3:.1f}" y="{y + 4:.1f}" class="devlabel">{escape(p["label"])}</text></g>')  # fmt: skip


def scatter(points: list[dict], width: int = 760, height: int = 560) -> Markup:
    """The 2-D dialect map: ``points`` with ``x``, ``y``, ``colour``, ``info``, ``href``; outliers
    (grey) are drawn first so the clusters stay visible."""
    if not points:
        return Markup(
            '<svg class="scatter" width="300" height="60"><text x="10" y="30">no songs</text></svg>'
        )
    xs = [p["x"] for p in points]
    ys = [p["y"] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (width - 20) / max(x1 - x0, 1e-9)
    sy = (height - 20) / max(y1 - y0, 1e-9)
    parts = [f'<svg class="scatter" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}"><rect width="{width}" height="{height}" fill="#fff"/>']  # fmt: skip
    for p in sorted(points, key=lambda p: p.get("cluster", 0) >= 0):
        x, y = 10 + (p["x"] - x0) * sx, height - 10 - (p["y"] - y0) * sy
        parts.append(f'<a href="{escape(p["href"])}"><circle class="pt" cx="{x:.1f}" cy="{y:.1f}" r="3.2" '
                     f'fill="{p["colour"]}" data-info="{escape(p["info"])}"><title>{escape(p["info"])}</title>'
                     "</circle></a>")  # fmt: skip
    parts.append("</svg>")
    return Markup("".join(parts))
