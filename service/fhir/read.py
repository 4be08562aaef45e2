"""Lenient, typed reading of the FHIR R4 fields the rules read.

EHR data is often not perfectly conformant, so this module reads leniently (unknown fields
and extensions are ignored, a dateTime without timezone is read as UTC and says so) and
checks strictly what it reads (a wrong type, an unparseable date, an unknown unit: the
resource is skipped and a :class:`DataQualityNote` names it, never its contents).

It works on plain orjson-parsed dicts: selecting the few resources the rules read by type
and code happens *before* any decoding (:func:`select`), so a prefetch of 10,000 unrelated
Observations costs about one dict probe each. fhir.resources is kept for strict mode
(``strict.py``); it costs ~160 µs per resource and is too slow for the hot path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

import msgspec

from service.fhir import codes
from service.fhir.bundle import SKIPPED_OBSERVATION
from service.fhir.codes import ExtrahepaticSite, LiverSite, ObservationKind, ResectionExtent
from service.fhir.units import Quantity, UnitError, canonical_code, convert
from service.notes import DataQualityNote

# --------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------

_YEAR: Final = re.compile(r"\d{4}")
_YEAR_MONTH: Final = re.compile(r"(\d{4})-(\d{2})")
_DATE: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_DATETIME: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?"
)


class DateError(ValueError):
    """A FHIR date or dateTime that cannot be read."""


class When(msgspec.Struct, frozen=True, gc=False):
    """A parsed FHIR date/dateTime: the earliest instant it can mean, in UTC."""

    at: datetime
    timezone_assumed: bool = False
    """A time of day was given without a timezone: read as UTC."""
    precision: str = "second"
    """``year``, ``month``, ``day`` or ``second``."""


def parse_when(value: object) -> When:
    """Parse a FHIR ``date``/``dateTime``/``instant`` (partial dates allowed).

    A partial date means its first instant (``"2024-05"`` -> 2024-05-01T00:00Z): the
    conservative reading for "is it within the lookback window". A time of day without a
    timezone is read as UTC and flagged.
    """
    if value.__class__ is not str:
        raise DateError("not a string")
    assert isinstance(value, str)
    return _parse_date_text(value)


@lru_cache(maxsize=4096)
def _parse_date_text(value: str) -> When:
    """:func:`parse_when` of a string, cached: the result is immutable, and a chart repeats
    the same few timestamps (a lab panel shares one ``effectiveDateTime``; the same patient's
    chart is assessed again at every visit), while the regular expression, ``fromisoformat``
    and the conversion to UTC cost tens of thousands of instructions per uncached string.
    A string that is not a date raises :class:`DateError` every time (not cached)."""
    s = value.strip()
    n = len(s)
    try:
        if n > 10:
            if _DATETIME.fullmatch(s) is None:
                raise DateError("not a valid date")
            parsed = datetime.fromisoformat(s)
            if parsed.tzinfo is None:
                return When(parsed.replace(tzinfo=UTC), True, "second")
            return When(parsed.astimezone(UTC), False, "second")
        if n == 10 and _DATE.fullmatch(s):
            return When(datetime(int(s[0:4]), int(s[5:7]), int(s[8:10]), tzinfo=UTC), False, "day")
        if n == 7 and _YEAR_MONTH.fullmatch(s):
            return When(datetime(int(s[0:4]), int(s[5:7]), 1, tzinfo=UTC), False, "month")
        if n == 4 and _YEAR.fullmatch(s):
            return When(datetime(int(s), 1, 1, tzinfo=UTC), False, "year")
    except (ValueError, OverflowError):
        raise DateError("not a valid date") from None
    raise DateError("not a valid date")


def parse_birth_date(value: object) -> When:
    """Patient.birthDate: a FHIR ``date`` (year, year-month or full date)."""
    when = parse_when(value)
    if when.precision == "second":
        raise DateError("not a valid date")
    return when


# --------------------------------------------------------------------------------------------
# Typed records of what the rules read
# --------------------------------------------------------------------------------------------


class SiteRead(msgspec.Struct, frozen=True, gc=False):
    """One bodySite CodeableConcept: the liver site it names (if any) and its qualifiers."""

    liver: LiverSite | None
    coded: bool
    """It has at least one coding (a site we could recognise, liver or not)."""
    superficial: bool = False
    diffuse: bool = False
    elsewhere: ExtrahepaticSite | None = None
    """For a coded site that is not the liver: ``lung``, ``lymph-node`` or ``other``
    (fhir-mapping §4, v2); None for a liver site or an uncoded one."""

    @property
    def key(self) -> str:
        return self.liver.code if self.liver is not None else "?"


class ConditionRead(msgspec.Struct, frozen=True, gc=False):
    ref: str
    id: str | None
    tags: frozenset[str]
    clinical_status: str | None
    verification_status: str | None
    sites: tuple[SiteRead, ...] = ()
    severity_points: int | None = None
    onset: datetime | None = None
    related: str | None = None
    """Id of the Condition named by the related-primary extension, if any."""
    timezone_assumed: bool = False
    recorded: datetime | None = None
    """Condition.recordedDate (a jaundice Condition without onset expires from it, v2)."""
    codes: tuple[str, ...] = ()
    """The codes (as sent) of the codings the rules read, e.g. ``("C22.9",)``."""

    @property
    def current(self) -> bool:
        return self.clinical_status in (None, "active", "recurrence", "relapse") and (
            self.verification_status not in ("refuted", "entered-in-error")
        )

    @property
    def usable(self) -> bool:
        """Not refuted or entered in error, whatever its clinical status (a primary cancer in
        remission or resolved is still the primary of its metastases, v2)."""
        return self.verification_status not in ("refuted", "entered-in-error")

    @property
    def confirmed(self) -> bool:
        return self.verification_status in (None, "confirmed")


class ObservationRead(msgspec.Struct, frozen=True, gc=False):
    ref: str
    id: str | None
    kind: ObservationKind
    time: datetime
    status_missing: bool = False
    timezone_assumed: bool = False
    quantity: Quantity | None = None
    """Labs, tumour size, FLR: the value in its canonical unit."""
    integer: int | None = None
    """ECOG 0-5, Karnofsky 0-100, lesion count >= 1."""
    text: str | None = None
    """TNM N category as read (``"N0"``, ``"N1"``, ...)."""
    site: SiteRead | None = None
    focus: tuple[str, ...] = ()
    comparator: str | None = None
    reference_high: float | None = None
    """referenceRange.high of a lab, in the unit the value was sent in; None when absent or
    in another unit (bilirubin's upper limit of normal, v2)."""


class PatientRead(msgspec.Struct, frozen=True, gc=False):
    ref: str
    birth_date: When | None
    deceased: bool = False
    """deceasedBoolean true (fhir-mapping §9)."""
    deceased_at: datetime | None = None
    """deceasedDateTime; the facts compare it with the evaluation time."""


class ProcedureRead(msgspec.Struct, frozen=True, gc=False):
    """A completed Procedure of this patient that names a liver resection (fhir-mapping §8)."""

    ref: str
    id: str | None
    extent: ResectionExtent
    performed: datetime | None
    """performedDateTime, else performedPeriod.end; None when neither is given."""
    code: str
    """The resection code as sent, with its system's short name (``"CPT 47130"``)."""


@dataclass
class Selection:
    """What :func:`select` kept for one patient, plus the problems it found."""

    patient: PatientRead | None = None
    conditions: list[ConditionRead] = field(default_factory=list)
    observations: list[ObservationRead] = field(default_factory=list)
    procedures: list[ProcedureRead] = field(default_factory=list)
    """Completed liver resections of this patient (v2)."""
    procedures_checked: bool = True
    """False when the caller could not obtain this patient's Procedures (the ``procedures``
    prefetch key neither sent nor fetched): previous liver surgery is then unchecked."""
    linked_unclassified: frozenset[str] = frozenset()
    """Ids of this patient's Conditions that the rules do not read, not refuted or entered
    in error, that a kept Condition's related-primary link names (primary site ``other``).
    Resolved once at the end of :func:`select`, so the facts need no raw resource."""
    unclassified_conditions: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    """Conditions whose codes the rules do not read, by id (not decoded: a related-primary
    link pointing at one means primary site ``other``, see :meth:`usable_unclassified`)."""
    patient_ref: str = ""

    def usable_unclassified(self, condition_id: str) -> bool:
        """This patient's unclassified Condition ``condition_id`` exists and is not refuted
        or entered in error."""
        r = self.unclassified_conditions.get(condition_id)
        if r is None:
            return False
        subject = r.get("subject")
        reference = subject.get("reference") if isinstance(subject, dict) else None
        if not isinstance(reference, str) or not (
            reference == self.patient_ref or reference.endswith("/" + self.patient_ref)
        ):
            return False
        try:
            status = _status_code(r.get("verificationStatus"), "verificationStatus")
        except ReadError:
            return False
        return status not in ("refuted", "entered-in-error")

    notes: list[DataQualityNote] = field(default_factory=list)
    other_patient: int = 0
    """Relevant resources that belong to another patient (ignored)."""
    timezone_assumed: list[str] = field(default_factory=list)
    status_missing: list[str] = field(default_factory=list)


class ReadError(ValueError):
    """A read field is malformed; the message names the field, never its value."""


# --------------------------------------------------------------------------------------------
# Small typed accessors
# --------------------------------------------------------------------------------------------


def resource_ref(resource: Mapping[str, Any], position: int | None = None) -> str:
    """``"Observation/abc"``, or ``"Observation (no id)"`` / ``"item 7"`` — never contents."""
    rtype = resource.get("resourceType")
    rtype = rtype if isinstance(rtype, str) and rtype.isalnum() and len(rtype) < 64 else None
    if rtype is None:
        return f"item {position}" if position is not None else "resource without resourceType"
    return _typed_ref(rtype, resource.get("id"), position)


_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def _typed_ref(rtype: str, rid: Any, position: int | None) -> str:
    """:func:`resource_ref` of a resource (item ``position``, id ``rid``) whose type the
    caller has already found to be the literal ``rtype``: the same text, without reading
    and checking the type again."""
    if (
        rid.__class__ is str
        and 0 < len(rid) <= 64
        and rid.isascii()
        and (rid.isalnum() or _ID.fullmatch(rid))
    ):
        return f"{rtype}/{rid}"
    return f"{rtype} (no id)" if position is None else f"{rtype} (no id, item {position})"


def _codings(concept: object, what: str) -> list[dict[str, Any]]:
    """The well-formed codings of a CodeableConcept (None -> empty)."""
    if concept is None:
        return []
    if not isinstance(concept, dict):
        raise ReadError(f"{what} is not a CodeableConcept")
    coding = concept.get("coding")
    if coding is None:
        return []
    if not isinstance(coding, list):
        raise ReadError(f"{what}.coding is not a list")
    return [c for c in coding if isinstance(c, dict)]


def _status_code(concept: object, what: str) -> str | None:
    for c in _codings(concept, what):
        code = c.get("code")
        if isinstance(code, str):
            return code
    return None


def _site(concept: object, what: str) -> SiteRead:
    codings = _codings(concept, what)
    liver: LiverSite | None = None
    elsewhere: ExtrahepaticSite | None = None
    for c in codings:
        if c.get("system") == codes.SNOMED:
            code = c.get("code")
            if isinstance(code, str):
                liver = codes.LIVER_SITES.get(code.strip())
                if liver is not None:
                    break
                elsewhere = elsewhere or codes.EXTRAHEPATIC_SITES.get(code.strip())
    if liver is None and codings and elsewhere is None:
        elsewhere = "other"
    elif liver is not None:
        elsewhere = None
    superficial = diffuse = False
    if not isinstance(concept, dict):
        return SiteRead(None, False)
    ext = concept.get("extension")
    if isinstance(ext, list):
        for e in ext:
            if isinstance(e, dict) and e.get("url") == codes.MCODE_BODY_LOCATION_QUALIFIER:
                for q in _codings(e.get("valueCodeableConcept"), f"{what} qualifier"):
                    pair = (q.get("system"), q.get("code"))
                    if pair == codes.SUPERFICIAL:
                        superficial = True
                    elif pair == codes.DIFFUSE:
                        diffuse = True
    elif ext is not None:
        raise ReadError(f"{what}.extension is not a list")
    return SiteRead(liver, bool(codings), superficial, diffuse, elsewhere)


def _reference_id(value: object, rtype: str) -> str | None:
    """Id from a Reference to ``rtype`` (relative or absolute URL), else None."""
    if not isinstance(value, dict):
        return None
    ref = value.get("reference")
    if not isinstance(ref, str):
        return None
    ref = ref.split("/_history/", 1)[0]
    marker = rtype + "/"
    if ref.startswith(marker):
        return ref[len(marker) :] or None
    pos = ref.rfind("/" + marker)
    if pos >= 0:
        return ref[pos + len(marker) + 1 :] or None
    return None


_NUMBER_TYPES: Final = (int, float)
"""A tuple, not ``int | float``: that expression builds a new union object at every call."""


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, _NUMBER_TYPES):
        raise ReadError(f"{what} is not a number")
    if not math.isfinite(value):
        raise ReadError(f"{what} is not a finite number")
    return float(value)


# --------------------------------------------------------------------------------------------
# Per-resource readers
# --------------------------------------------------------------------------------------------


def _read_condition(
    r: Mapping[str, Any],
    tags: frozenset[str],
    ref: str,
    notes: list[DataQualityNote],
    read_codes: tuple[str, ...] = (),
) -> ConditionRead:
    clinical = _status_code(r.get("clinicalStatus"), "clinicalStatus")
    verification = _status_code(r.get("verificationStatus"), "verificationStatus")
    sites: list[SiteRead] = []
    raw_sites = r.get("bodySite")
    try:
        if raw_sites is not None:
            if not isinstance(raw_sites, list):
                raise ReadError("bodySite is not a list")
            sites = [_site(s, "bodySite") for s in raw_sites if s is not None]
    except ReadError as exc:
        sites = []
        notes.append(DataQualityNote(ref, f"{exc}; body site not used"))
    severity: int | None = None
    try:
        for c in _codings(r.get("severity"), "severity"):
            if c.get("system") == codes.SNOMED and isinstance(c.get("code"), str):
                points = codes.SEVERITY_POINTS.get(c["code"])
                if points is not None:
                    severity = max(severity or 0, points)
    except ReadError as exc:
        notes.append(DataQualityNote(ref, f"{exc}; severity not used"))
    onset: datetime | None = None
    tz = False
    raw_onset = r.get("onsetDateTime")
    if raw_onset is None:
        period = r.get("onsetPeriod")
        if isinstance(period, dict):
            raw_onset = period.get("start")
    if raw_onset is not None:
        try:
            when = parse_when(raw_onset)
            onset, tz = when.at, when.timezone_assumed
        except DateError as exc:
            notes.append(DataQualityNote(ref, f"onset {exc}; onset not used"))
    recorded: datetime | None = None
    raw_recorded = r.get("recordedDate")
    if raw_recorded is not None:
        try:
            recorded = parse_when(raw_recorded).at
        except DateError as exc:
            notes.append(DataQualityNote(ref, f"recordedDate {exc}; not used"))
    related: str | None = None
    ext = r.get("extension")
    if isinstance(ext, list):
        for e in ext:
            url = e.get("url") if isinstance(e, dict) else None
            if isinstance(url, str) and url in codes.RELATED_PRIMARY_EXTENSIONS:
                related = _reference_id(e.get("valueReference"), "Condition")
                if related is not None:
                    break
    rid = r.get("id")
    return ConditionRead(
        ref=ref,
        id=rid if isinstance(rid, str) else None,
        tags=tags,
        clinical_status=clinical,
        verification_status=verification,
        sites=tuple(sites),
        severity_points=severity,
        onset=onset,
        related=related,
        timezone_assumed=tz,
        recorded=recorded,
        codes=read_codes,
    )


_COUNTED_STATUS: Final = frozenset({"final", "amended", "corrected"})


def _observation_time(r: Mapping[str, Any]) -> When | None:
    """effectiveDateTime, else effectivePeriod.end, else effectiveInstant, else issued."""
    raw = r.get("effectiveDateTime")
    if raw is not None:
        return parse_when(raw)
    period = r.get("effectivePeriod")
    if period is not None:
        if not isinstance(period, dict):
            raise DateError("is not a Period")
        end = period.get("end")
        if end is not None:
            return parse_when(end)
    for key in ("effectiveInstant", "issued"):
        raw = r.get(key)
        if raw is not None:
            return parse_when(raw)
    return None


def _read_quantity(kind: ObservationKind, q: object, what: str) -> tuple[Quantity, str | None]:
    if not isinstance(q, dict):
        raise ReadError(f"{what} is not a Quantity")
    value = q.get("value")
    if value.__class__ is not float or not math.isfinite(value):
        # Not the usual finite float: checked (and named, if wrong) by _number.
        value = _number(value, f"{what}.value")
    system = q.get("system")
    code = q.get("code")
    if code is not None and not isinstance(code, str):
        raise ReadError(f"{what}.code is not a string")
    if system is not None and system != codes.UCUM and code is not None:
        raise ReadError(f"{what} unit is not a UCUM code")
    comparator = q.get("comparator")
    if comparator is not None and comparator not in ("<", "<=", ">=", ">"):
        raise ReadError(f"{what}.comparator is not valid")
    unit = q.get("unit")
    try:
        return convert(kind, value, code, unit if isinstance(unit, str) else None), comparator
    except UnitError as exc:
        raise ReadError(str(exc)) from None


def _reference_high(kind: ObservationKind, ranges: object, unit: str | None) -> float | None:
    """The first referenceRange.high in the UCUM unit ``unit`` the value was sent in.

    A range in another unit, without a UCUM code, or not a finite positive number is not
    used (the default upper limit of normal applies, fhir-mapping §5): it never makes the
    value itself unusable.
    """
    if ranges.__class__ is not list or unit is None:
        return None
    assert isinstance(ranges, list)
    for rr in ranges:
        high = rr.get("high") if rr.__class__ is dict else None
        if high.__class__ is not dict:
            continue
        value, code, system = high.get("value"), high.get("code"), high.get("system")
        if system is not None and system != codes.UCUM:
            continue
        if code.__class__ is not str or canonical_code(kind, code) != unit:
            continue
        if value.__class__ in (int, float) and math.isfinite(value) and value > 0:
            return float(value)
    return None


def _read_integer(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise ReadError(f"{what} is not an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise ReadError(f"{what} is not an integer")
    if not low <= value <= high:
        raise ReadError(f"{what} is outside {low}-{high}")
    return value


_TNM_N: Final = re.compile(r"^(?:[cpyra]{0,3})N([0-3X])", re.IGNORECASE)


def _tnm_n(concept: object) -> str | None:
    """``"N0"``..``"N3"`` or ``"NX"`` from a TNM N category CodeableConcept, by its label."""
    if not isinstance(concept, dict):
        return None
    labels: list[object] = []
    for c in _codings(concept, "valueCodeableConcept"):
        labels += [c.get("code"), c.get("display")]
    labels.append(concept.get("text"))
    for label in labels:
        if isinstance(label, str):
            m = _TNM_N.match(label.strip())
            if m:
                return "N" + m.group(1).upper()
    return None


_QUANTITY_KINDS: Final = codes.LAB_KINDS | {"flr"}
"""The kinds whose value is a valueQuantity in a unit (the labs and the FLR)."""


def _read_observation(
    r: Mapping[str, Any], kind: ObservationKind, ref: str, when: When, status_missing: bool
) -> ObservationRead:
    rid = r.get("id")
    # ObservationRead is built positionally (its fields in order: ref, id, kind, time,
    # status_missing, timezone_assumed, quantity, integer, text, site, focus, comparator,
    # reference_high): keyword arguments would cost a dict per Observation.
    head = (
        ref,
        rid if isinstance(rid, str) else None,
        kind,
        when.at,
        status_missing,
        when.timezone_assumed,
    )
    if kind in _QUANTITY_KINDS:
        quantity, comparator = _read_quantity(kind, r.get("valueQuantity"), "valueQuantity")
        high = None
        if kind == "bilirubin":
            high = _reference_high(kind, r.get("referenceRange"), quantity.reported_code)
        return ObservationRead(*head, quantity, None, None, None, (), comparator, high)
    if kind == "tumour-size":
        q: object = None
        components = r.get("component")
        if components is not None and not isinstance(components, list):
            raise ReadError("component is not a list")
        for comp in components or ():
            if isinstance(comp, dict) and any(
                c.get("code") == codes.TUMOUR_SIZE_LONGEST_COMPONENT
                and c.get("system") == codes.LOINC
                for c in _codings(comp.get("code"), "component.code")
            ):
                q = comp.get("valueQuantity")
                break
        what = "component valueQuantity" if q is not None else "valueQuantity"
        if q is None:
            q = r.get("valueQuantity")
        quantity, comparator = _read_quantity(kind, q, what)
        raw_site = r.get("bodySite")
        site = _site(raw_site, "bodySite") if raw_site is not None else None
        focus_raw = r.get("focus")
        focus: tuple[str, ...] = ()
        if isinstance(focus_raw, list):
            focus = tuple(
                f["reference"]
                for f in focus_raw
                if isinstance(f, dict) and isinstance(f.get("reference"), str)
            )
        return ObservationRead(*head, quantity, None, None, site, focus, comparator)
    if kind == "ecog":
        if "valueInteger" in r:
            grade = _read_integer(r["valueInteger"], "valueInteger", 0, 5)
            return ObservationRead(*head, None, grade)
        if "valueCodeableConcept" in r:
            for c in _codings(r["valueCodeableConcept"], "valueCodeableConcept"):
                if c.get("system") == codes.LOINC and isinstance(c.get("code"), str):
                    answer = codes.ECOG_ANSWERS.get(c["code"])
                    if answer is not None:
                        return ObservationRead(*head, None, answer)
            raise ReadError("valueCodeableConcept is not an ECOG answer code")
        if "valueQuantity" in r:
            vq = r["valueQuantity"]
            value = vq.get("value") if isinstance(vq, dict) else None
            grade = _read_integer(value, "valueQuantity.value", 0, 5)
            return ObservationRead(*head, None, grade)
        raise ReadError("no ECOG value")
    if kind == "karnofsky":
        if "valueInteger" in r:
            raw: object = r["valueInteger"]
            what = "valueInteger"
        elif isinstance(r.get("valueQuantity"), dict):
            raw, what = r["valueQuantity"].get("value"), "valueQuantity.value"
        else:
            raise ReadError("no Karnofsky value")
        return ObservationRead(*head, None, _read_integer(raw, what, 0, 100))
    if kind == "lesion-count":
        if "valueInteger" in r:
            raw, what = r["valueInteger"], "valueInteger"
        elif isinstance(r.get("valueQuantity"), dict):
            raw, what = r["valueQuantity"].get("value"), "valueQuantity.value"
        else:
            raise ReadError("no lesion count value")
        return ObservationRead(*head, None, _read_integer(raw, what, 1, 10_000))
    if kind == "tnm-n":
        n = _tnm_n(r.get("valueCodeableConcept"))
        if n is None:
            raise ReadError("valueCodeableConcept is not a recognisable N category")
        return ObservationRead(*head, None, None, n)
    raise ReadError(f"unsupported kind {kind}")  # pragma: no cover


# --------------------------------------------------------------------------------------------
# Selection: the hot path
# --------------------------------------------------------------------------------------------


def select(
    resources: Iterable[Any], patient_id: str, *, procedures_checked: bool = True
) -> Selection:
    """Keep this patient's Patient, and the Conditions, Observations and (v2) Procedures the
    rules read.

    Order of checks per resource, cheapest and most selective first: resourceType, then the
    code (a dict probe per coding), then the subject reference, then reading the fields.
    Other patients' resources and other resource types are ignored; a relevant resource
    whose read fields are malformed is skipped with a note. Never raises on bad data.
    ``procedures_checked`` says whether the caller could obtain this patient's Procedures at
    all (the ``procedures`` prefetch key sent or fetched); it is handed over as it is.
    """
    patient_ref = "Patient/" + patient_id
    sel = Selection(patient_ref=patient_ref, procedures_checked=procedures_checked)
    seen: set[str] = set()  # kept Conditions ("C" + id) and Procedures ("P" + id)
    seen_observations: set[str] = set()  # kept Observations' ids: no prefixed string per id
    obs_codes = codes.OBSERVATION_CODES
    for position, r in enumerate(resources):
        if r is SKIPPED_OBSERVATION:
            continue  # the skim's stand-in for an Observation with no code the rules read
        if r.__class__ is not dict and not isinstance(r, Mapping):
            sel.notes.append(DataQualityNote(f"item {position}", "not a JSON object"))
            continue
        rtype = r.get("resourceType")
        if rtype == "Observation":
            code = r.get("code")
            if code.__class__ is not dict:
                continue
            coding = code.get("coding")
            if coding.__class__ is not list:
                continue
            kind: ObservationKind | None = None
            for c in coding:
                if c.__class__ is dict:
                    cc = c.get("code")
                    if cc.__class__ is str:
                        hit = obs_codes.get(cc)
                        if hit is not None and c.get("system") == hit[0]:
                            kind = hit[1]
                            break
            if kind is None:
                continue
            _select_observation(sel, r, kind, patient_ref, position, seen_observations)
        elif rtype == "Condition":
            _select_condition(sel, r, patient_ref, position, seen)
        elif rtype == "Patient":
            _select_patient(sel, r, patient_id, position)
        elif rtype == "Procedure":
            _select_procedure(sel, r, patient_ref, position, seen)
        elif rtype == "Bundle":
            # Bundles are unpacked before selection (service/fhir/bundle.py owns their
            # rules); one reaching here was handed over unpacked, which is a caller's bug.
            sel.notes.append(DataQualityNote(f"item {position}", "a Bundle; not unpacked"))
        elif rtype is None or not isinstance(rtype, str):
            sel.notes.append(DataQualityNote(f"item {position}", "no resourceType"))
    if sel.unclassified_conditions:
        sel.linked_unclassified = frozenset(
            c.related
            for c in sel.conditions
            if c.related is not None and sel.usable_unclassified(c.related)
        )
    return sel


def _belongs(sel: Selection, r: Mapping[str, Any], patient_ref: str, ref: str) -> bool:
    subject = r.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if reference == patient_ref:
        return True
    if not isinstance(reference, str):
        sel.notes.append(DataQualityNote(ref, "no subject reference; ignored"))
        return False
    reference = reference.split("/_history/", 1)[0]
    if reference == patient_ref or reference.endswith("/" + patient_ref):
        return True
    sel.other_patient += 1
    return False


def _select_observation(
    sel: Selection,
    r: Mapping[str, Any],
    kind: ObservationKind,
    patient_ref: str,
    position: int,
    seen: set[str],
) -> None:
    rid = r.get("id")
    ref = _typed_ref("Observation", rid, position)
    subject = r.get("subject")
    # The usual subject, {"reference": "Patient/<id>"}, is recognised without a call.
    usual = subject.__class__ is dict and subject.get("reference") == patient_ref
    if not usual and not _belongs(sel, r, patient_ref, ref):
        return
    if isinstance(rid, str):
        if rid in seen:
            return
        seen.add(rid)
    status = r.get("status")
    if status is None:
        status_missing = True
    elif status.__class__ is not str:
        sel.notes.append(DataQualityNote(ref, "status is not a code; skipped"))
        return
    elif status in _COUNTED_STATUS:
        status_missing = False
    else:
        return  # preliminary, cancelled, entered-in-error, ...: not a result to use
    raw_time = r.get("effectiveDateTime")
    try:
        # effectiveDateTime as a string is the usual case: parsed (cached) without the
        # look-ups of _observation_time, which reads the other places in turn.
        when = _parse_date_text(raw_time) if raw_time.__class__ is str else _observation_time(r)
    except DateError as exc:
        sel.notes.append(DataQualityNote(ref, f"effective time {exc}; skipped"))
        return
    if when is None:
        sel.notes.append(DataQualityNote(ref, "no effective time or issued date; skipped"))
        return
    try:
        obs = _read_observation(r, kind, ref, when, status_missing)
    except ReadError as exc:
        sel.notes.append(DataQualityNote(ref, f"{exc}; skipped"))
        return
    if obs.comparator is not None:
        sel.notes.append(
            DataQualityNote(ref, f"value has comparator '{obs.comparator}'; used as the limit")
        )
    if status_missing:
        sel.status_missing.append(ref)
    if when.timezone_assumed:
        sel.timezone_assumed.append(ref)
    sel.observations.append(obs)


def _select_condition(
    sel: Selection, r: Mapping[str, Any], patient_ref: str, position: int, seen: set[str]
) -> None:
    code = r.get("code")
    tags: frozenset[str] = frozenset()
    read_codes: tuple[str, ...] = ()
    if code.__class__ is dict:
        coding = code.get("coding")
        if coding.__class__ is list:
            for c in coding:
                if c.__class__ is dict:
                    found = codes.condition_tags(c.get("system"), c.get("code"))
                    if found:
                        tags = tags | found
                        read_codes += (str(c.get("code")).strip()[:20],)
    rid = r.get("id")
    if not tags:
        # Not read by the rules, but a related-primary link may point at it (primary site
        # "other"): keep a reference to the dict, judged only if a link names it.
        if rid.__class__ is str:
            sel.unclassified_conditions.setdefault(rid, r)
        return
    ref = resource_ref(r, position)
    if not _belongs(sel, r, patient_ref, ref):
        return
    if isinstance(rid, str):
        if ("C" + rid) in seen:
            return
        seen.add("C" + rid)
    notes: list[DataQualityNote] = []
    try:
        cond = _read_condition(r, tags, ref, notes, read_codes)
    except ReadError as exc:
        sel.notes.append(DataQualityNote(ref, f"{exc}; skipped"))
        return
    sel.notes += notes
    if cond.timezone_assumed:
        sel.timezone_assumed.append(ref)
    sel.conditions.append(cond)


def _select_patient(sel: Selection, r: Mapping[str, Any], patient_id: str, position: int) -> None:
    if r.get("id") != patient_id:
        sel.other_patient += 1
        return
    ref = "Patient/" + patient_id
    birth: When | None = None
    raw = r.get("birthDate")
    if raw is not None:
        try:
            birth = parse_birth_date(raw)
        except DateError as exc:
            sel.notes.append(DataQualityNote(ref, f"birthDate {exc}; age unknown"))
    deceased = r.get("deceasedBoolean") is True
    deceased_at: datetime | None = None
    raw_deceased = r.get("deceasedDateTime")
    if raw_deceased is not None:
        try:
            deceased_at = parse_when(raw_deceased).at
        except DateError as exc:
            # A date of death that cannot be read still says the patient died.
            sel.notes.append(DataQualityNote(ref, f"deceasedDateTime {exc}; read as deceased"))
            deceased = True
    if sel.patient is None or (sel.patient.birth_date is None and birth is not None):
        sel.patient = PatientRead(ref, birth, deceased, deceased_at)
    elif deceased or deceased_at is not None:
        sel.patient = PatientRead(
            ref,
            sel.patient.birth_date,
            sel.patient.deceased or deceased,
            sel.patient.deceased_at or deceased_at,
        )


_SYSTEM_LABEL: Final = {codes.CPT: "CPT", codes.ICD10PCS: "ICD-10-PCS"}


def _select_procedure(
    sel: Selection, r: Mapping[str, Any], patient_ref: str, position: int, seen: set[str]
) -> None:
    """Keep a completed liver resection of this patient (fhir-mapping §8).

    A Procedure with none of the resection codes is passed over after one dict probe per
    coding, unless its bodySite is a liver site and its text names a resection: that one
    is not guessed at, it is named in the data-quality note for the MDT to check.
    """
    code = r.get("code")
    coding = code.get("coding") if code.__class__ is dict else None
    extent: ResectionExtent | None = None
    label = ""
    if coding.__class__ is list:
        for c in coding:
            if c.__class__ is dict:
                found = codes.resection_extent(c.get("system"), c.get("code"))
                if found is not None and (extent is None or found == "hemihepatectomy"):
                    extent = found
                    label = f"{_SYSTEM_LABEL[c['system']]} {str(c['code']).strip()[:12]}"
    if r.get("status") != "completed":
        return  # preparation, in-progress, not-done, stopped, entered-in-error, unknown
    ref = resource_ref(r, position)
    if extent is None:
        if _names_liver_resection(r, code) and _belongs(sel, r, patient_ref, ref):
            sel.notes.append(
                DataQualityNote(
                    ref,
                    "a procedure on the liver whose text names a resection, without a "
                    "resection code the rules read; previous liver surgery to be checked "
                    "by the MDT",
                )
            )
        return
    if not _belongs(sel, r, patient_ref, ref):
        return
    rid = r.get("id")
    if isinstance(rid, str):
        if ("P" + rid) in seen:
            return
        seen.add("P" + rid)
    performed: datetime | None = None
    raw = r.get("performedDateTime")
    what = "performedDateTime"
    if raw is None:
        period = r.get("performedPeriod")
        raw = period.get("end") if isinstance(period, dict) else None
        what = "performedPeriod.end"
    if raw is not None:
        try:
            performed = parse_when(raw).at
        except DateError as exc:
            sel.notes.append(DataQualityNote(ref, f"{what} {exc}; date of the resection unknown"))
    sel.procedures.append(
        ProcedureRead(
            ref=ref,
            id=rid if isinstance(rid, str) else None,
            extent=extent,
            performed=performed,
            code=label,
        )
    )


def _names_liver_resection(r: Mapping[str, Any], code: object) -> bool:
    """bodySite is a liver site (§3) and the code's text or a display names a resection."""
    sites = r.get("bodySite")
    if sites.__class__ is not list:
        return False
    on_liver = False
    for concept in sites:
        try:
            if _site(concept, "bodySite").liver is not None:
                on_liver = True
                break
        except ReadError:
            continue
    if not on_liver or code.__class__ is not dict:
        return False
    assert isinstance(code, dict)
    texts = [code.get("text")]
    coding = code.get("coding")
    if coding.__class__ is list:
        texts += [c.get("display") for c in coding if c.__class__ is dict]
    for text in texts:
        if isinstance(text, str):
            lowered = text.lower()
            if any(word in lowered for word in codes.RESECTION_WORDS):
                return True
    return False
