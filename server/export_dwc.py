"""Darwin Core Archive (DwC-A) of the songs, for GBIF and other biodiversity databases.

``yellowhammer-dwca.zip`` holds ``occurrence.txt`` (one Occurrence per detection: tab-separated,
UTF-8, a header line of term names, no quoting), ``meta.xml`` (the descriptor: each column's
index and its Darwin Core term URI) and ``eml.xml`` (minimal dataset metadata: title, creator,
contact, publication date, temporal and geographic coverage).

The occurrenceID is the detection id (stable across exports). Coordinates are the position the
recorder sent with the song, else its deployment's (see :class:`server.places.DeploymentIndex`);
``georeferenceRemarks`` says which; a song with neither has empty coordinates and datum. No song
is left out or changed: incomplete songs, outliers and songs a researcher labelled as false
positives are ordinary rows, told apart by ``dynamicProperties`` (``complete``, ``cluster``,
``cluster_name``, ``label``).

Text is written as it is except the characters that break a line or a field somewhere (controls
such as tab, CR, LF, NUL, NEL; the Unicode line and paragraph separators), which become a space,
and lone surrogates, which become U+FFFD; in ``dynamicProperties`` (JSON) those are ``\\uXXXX``
escapes instead, so the JSON keeps the exact text.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
import unicodedata
import uuid
import zipfile
from pathlib import Path
from urllib.parse import quote
from xml.etree import ElementTree as ET

from edge.kit.version import __version__

from .dialects import cluster_label, given_names
from .export import as_bools
from .places import DeploymentIndex, iso
from .storage import Storage

DWCA_NAME = "yellowhammer-dwca.zip"
DWC = "http://rs.tdwg.org/dwc/terms/"
DEFAULT_CREATOR = "Yellowhammer dialect monitor"
DEFAULT_TITLE = "Yellowhammer (Emberiza citrinella) songs detected by acoustic recorders"
#: the occurrence.txt columns, in order; each is the Darwin Core term of the same name
TERMS = ["occurrenceID", "basisOfRecord", "occurrenceStatus", "scientificName", "scientificNameAuthorship",
         "vernacularName", "taxonRank", "kingdom", "phylum", "class", "order", "family", "genus",
         "specificEpithet", "eventDate", "samplingProtocol", "decimalLatitude", "decimalLongitude",
         "geodeticDatum", "coordinateUncertaintyInMeters", "georeferenceRemarks", "minimumElevationInMeters",
         "maximumElevationInMeters", "locality", "recordedBy", "identificationRemarks", "associatedMedia",
         "dynamicProperties"]  # fmt: skip
CONSTANT = {
    "basisOfRecord": "MachineObservation",
    "occurrenceStatus": "present",
    "scientificName": "Emberiza citrinella",
    "scientificNameAuthorship": "Linnaeus, 1758",
    "vernacularName": "Yellowhammer",
    "taxonRank": "species",
    "kingdom": "Animalia",
    "phylum": "Chordata",
    "class": "Aves",
    "order": "Passeriformes",
    "family": "Emberizidae",
    "genus": "Emberiza",
    "specificEpithet": "citrinella",
    "samplingProtocol": "automated acoustic monitoring: song detector and dialect encoder on a field recorder",
}
#: detection fields copied into dynamicProperties (JSON), besides the place, label and cluster
DYNAMIC = ("detector_version", "encoder_version", "score", "complete", "duration_s", "snr_db", "clock_synced",
           "truncated", "overlap", "refined")  # fmt: skip
_BREAKS = {"Cc", "Zl", "Zp"}  # tab, CR, LF, NUL, NEL, VT, FF, U+2028, U+2029, ...


def tsv_text(v: str) -> str:
    """Text safe in a field of the unquoted TSV: line/field-breaking characters become a space,
    lone surrogates (not UTF-8) U+FFFD; everything else is kept."""
    if v.isascii() and v.isprintable():
        return v
    out = []
    for ch in v:
        cat = unicodedata.category(ch)
        out.append(" " if cat in _BREAKS else "\ufffd" if cat == "Cs" else ch)
    return "".join(out)


def json_text(obj) -> str:
    """Compact JSON whose every breaking character or lone surrogate is a ``\\uXXXX`` escape (they
    can only sit inside JSON strings, where the escape means the same text)."""
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
    if s.isascii():
        return s
    return "".join(f"\\u{ord(ch):04x}" if unicodedata.category(ch) in (*_BREAKS, "Cs") else ch for ch in s)


def _number(v) -> str:
    """A coordinate or elevation without exponent (``1e-05`` is no decimal degree), to 1e-7."""
    if _finite(v) is None:
        return ""
    s = f"{float(v):.7f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _finite(v) -> float | None:
    """A number JSON and a coordinate can hold: not NaN or infinite (else None)."""
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _place(row: dict, dep: dict | None) -> dict:
    lat, lon = _finite(row.get("latitude")), _finite(row.get("longitude"))
    remark = "position the recorder sent with the song (from its configuration)"
    if lat is None or lon is None:
        lat, lon = (_finite(dep.get("latitude")), _finite(dep.get("longitude"))) if dep else (None, None)
        remark = "position of the recorder's deployment (the song carried none)" if dep else ""
    placed = lat is not None and lon is not None
    elevation = _number(dep.get("elevation_m")) if dep else ""
    return {"decimalLatitude": _number(lat) if placed else "", "decimalLongitude": _number(lon) if placed else "",
            "geodeticDatum": "WGS84" if placed else "", "georeferenceRemarks": remark if placed else "",
            # deployments carry no accuracy today: empty unless the storage ever gives one
            "coordinateUncertaintyInMeters": _number(dep.get("coordinate_uncertainty_m")) if dep else "",
            "minimumElevationInMeters": elevation, "maximumElevationInMeters": elevation,
            "locality": tsv_text(dep.get("site") or "") if dep else ""}  # fmt: skip


def _dynamic(row: dict, dep: dict | None, names: dict) -> dict:
    props = {k: row.get(k) for k in DYNAMIC if row.get(k) is not None}
    props.update({k: _finite(v) for k, v in props.items() if isinstance(v, float)})
    props["end_time"] = iso(row.get("end_time"))
    props["deployment_id"] = dep["deployment_id"] if dep else None
    props["label"] = row.get("label")
    if row.get("label") is not None:
        props["labeled_by"] = row.get("labeled_by")
        props["labeled_at"] = iso(row.get("labeled_at"))
    c = row.get("cluster")
    props["cluster_run"] = row.get("cluster_run")
    props["cluster"] = c
    if c is not None:
        given = names.get((row.get("cluster_run"), c))
        props["cluster_name"] = given if given else cluster_label(c) if c < 0 else None
        props["cluster_probability"] = _finite(row.get("cluster_probability"))
        props["cluster_fitted"] = row.get("cluster_fitted")
    props["has_clip"] = bool(row.get("has_clip"))
    return as_bools(props)  # true/false as in the export


def occurrence(row: dict, dep: dict | None, names: dict, media_base: str) -> list[str]:
    """One occurrence.txt row (values in :data:`TERMS` order) of a detection row."""
    rec = dict(CONSTANT)
    rec["occurrenceID"] = tsv_text(row["id"])
    rec["eventDate"] = iso(row.get("start_time")) or ""
    rec.update(_place(row, dep))
    rec["recordedBy"] = tsv_text(row["device_id"])
    score = _finite(row.get("score"))
    rec["identificationRemarks"] = tsv_text(
        f"automated identification: detector {row.get('detector_version') or 'unknown'}"
        + (f" (probability {score:.3f})" if score is not None else "")
        + f", dialect encoder {row.get('encoder_version')}"
    )
    rec["associatedMedia"] = (
        f"{media_base}/clips/{quote(row['id'], safe='')}" if media_base and row.get("has_clip") else ""
    )
    rec["dynamicProperties"] = json_text(_dynamic(row, dep, names))
    return [rec[t] for t in TERMS]


def cluster_names(storage: Storage) -> dict:
    """(run id, cluster) -> the name researchers gave it (or the cluster it continues), for the
    latest run of each encoder version."""
    out = {}
    for run in {r["encoder_version"]: r for r in storage.cluster_runs()}.values():
        for c, v in given_names(storage, run).items():
            out[(run["run_id"], c)] = v["name"]
    return out


class _Coverage:
    """The temporal and geographic extent of the rows written (for eml.xml)."""

    def __init__(self) -> None:
        self.t: list[str] = []
        self.lat: list[float] = []
        self.lon: list[float] = []

    def add(self, values: list[str]) -> None:
        rec = dict(zip(TERMS, values))
        if rec["eventDate"]:
            self.t = (
                [min(self.t[0], rec["eventDate"]), max(self.t[1], rec["eventDate"])]
                if self.t
                else [rec["eventDate"]] * 2
            )
        if rec["decimalLatitude"]:
            lat, lon = float(rec["decimalLatitude"]), float(rec["decimalLongitude"])
            self.lat = [min(self.lat[0], lat), max(self.lat[1], lat)] if self.lat else [lat, lat]
            self.lon = [min(self.lon[0], lon), max(self.lon[1], lon)] if self.lon else [lon, lon]


def write_occurrences(
    storage: Storage, path: Path, places: DeploymentIndex, media_base: str
) -> tuple[int, _Coverage]:
    """Stream occurrence.txt to ``path``; returns the row count and the coverage."""
    names = cluster_names(storage)
    cov = _Coverage()
    n = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter="\t", quoting=csv.QUOTE_NONE, quotechar=None, lineterminator="\n")
        w.writerow(TERMS)
        for row in storage.iter_detections():
            values = occurrence(row, places.find(row), names, media_base)
            cov.add(values)
            w.writerow(values)
            n += 1
    return n, cov


def meta_xml() -> bytes:
    """The archive descriptor: occurrence.txt is the core, column i is the term ``TERMS[i]``."""
    # the default namespace is an attribute (no global ET.register_namespace)
    archive = ET.Element("archive", {"xmlns": "http://rs.tdwg.org/dwc/text/", "metadata": "eml.xml"})
    core = ET.SubElement(archive, "core", {
        "encoding": "UTF-8", "fieldsTerminatedBy": "\\t", "linesTerminatedBy": "\\n", "fieldsEnclosedBy": "",
        "ignoreHeaderLines": "1", "rowType": DWC + "Occurrence"})  # fmt: skip
    ET.SubElement(ET.SubElement(core, "files"), "location").text = "occurrence.txt"
    ET.SubElement(core, "id", {"index": "0"})
    for i, term in enumerate(TERMS):
        ET.SubElement(core, "field", {"index": str(i), "term": DWC + term})
    ET.indent(archive)
    return ET.tostring(archive, encoding="utf-8", xml_declaration=True)


def _xml_text(s: str) -> str:
    """Text XML 1.0 can hold (it has no escape for most control characters)."""
    return "".join(ch if ch in "\t\n" or (unicodedata.category(ch) not in ("Cc", "Cs")) else " " for ch in s)


def eml_xml(title: str, creator: str, cov: _Coverage, n: int) -> bytes:
    """Minimal EML (GBIF profile): title, creator and contact, date, abstract, coverage."""
    root = ET.Element("eml:eml", {
        "xmlns:eml": "eml://ecoinformatics.org/eml-2.1.1", "packageId": str(uuid.uuid4()), "system": "http://gbif.org",
        "scope": "system", "xml:lang": "en"})  # fmt: skip
    ds = ET.SubElement(root, "dataset")
    ET.SubElement(ds, "title").text = _xml_text(title)
    ET.SubElement(ET.SubElement(ds, "creator"), "organizationName").text = _xml_text(creator)
    ET.SubElement(ds, "pubDate").text = time.strftime("%Y-%m-%d", time.gmtime())
    ET.SubElement(ds, "language").text = "en"
    ET.SubElement(ET.SubElement(ds, "abstract"), "para").text = (
        f"{n} songs of the Yellowhammer (Emberiza citrinella) detected automatically in recordings of field "
        f"recorders, with their dialect clusters (exported by yellowhammer {__version__}). Every detection is an "
        "occurrence, incomplete songs and unverified detections included (see dynamicProperties).")  # fmt: skip
    if cov.t or cov.lat:
        coverage = ET.SubElement(ds, "coverage")
        if cov.lat:
            geo = ET.SubElement(coverage, "geographicCoverage")
            ET.SubElement(geo, "geographicDescription").text = "The recorders' positions"
            box = ET.SubElement(geo, "boundingCoordinates")
            for tag, v in (("westBoundingCoordinate", cov.lon[0]), ("eastBoundingCoordinate", cov.lon[1]),
                           ("northBoundingCoordinate", cov.lat[1]), ("southBoundingCoordinate", cov.lat[0])):  # fmt: skip
                ET.SubElement(box, tag).text = _number(v)
        if cov.t:
            rng = ET.SubElement(ET.SubElement(coverage, "temporalCoverage"), "rangeOfDates")
            for tag, v in (("beginDate", cov.t[0]), ("endDate", cov.t[1])):
                ET.SubElement(ET.SubElement(rng, tag), "calendarDate").text = v[:10]
    ET.SubElement(ET.SubElement(ds, "contact"), "organizationName").text = _xml_text(creator)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def write_dwca(storage: Storage, path: Path, places: DeploymentIndex, media_base: str = "",
               creator: str = "", title: str = "") -> dict:  # fmt: skip
    """Write the archive to ``path`` (a zip), atomically; ``media_base``: the web app's public
    address (clips are linked in associatedMedia only with it)."""
    media_base = media_base.rstrip("/")
    part = path.with_name(path.name + ".part")
    occ = path.with_name(path.name + ".occurrence.part")
    try:
        n, cov = write_occurrences(storage, occ, places, media_base)
        with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("meta.xml", meta_xml())
            zf.writestr("eml.xml", eml_xml(title or DEFAULT_TITLE, creator or DEFAULT_CREATOR, cov, n))
            zf.write(occ, "occurrence.txt")  # from a file: Zip64 when it is over 4 GiB
        os.replace(part, path)  # nothing half-written under the final name
    finally:
        for p in (occ, part):
            p.unlink(missing_ok=True)
    return {"file": path.name, "occurrences": n, "terms": [DWC + t for t in TERMS]}
