"""Obtaining the data of one hook call: prefetch as given, missing keys fetched.

This is the "data" step of the flow (architecture.md): the protocol layer hands over the
service's prefetch templates, the request's ``prefetch``, ``context``, ``fhirServer`` and
access token; :func:`resolve` answers with one flat list of resources and the notes the
card shows, or raises

* :class:`PrefetchShapeError` (-> 400) when a prefetch value has a wrong shape, or
* :class:`DataUnavailable` (-> 412) when essential data cannot be obtained.

Which data is essential: ``conditions`` and ``observations`` decide the verdict, so a
missing, failed or *partial* fetch of either is a 412. A prefetch value that is an
OperationOutcome is the EHR saying it could not prefetch that key (CDS Hooks 2.0
"Prefetch Template": check prefetched data for OperationOutcomes, 412 when required data
cannot be obtained): the key is treated as not sent, so it is fetched from the FHIR server
when there is one, else an essential key is a 412 (never "no data", which for
``conditions`` would silently mean "no liver malignancy"). A partial Observation search could
hide the latest labs, and a verdict built on it would look trustworthy while it is not.
``patient`` only refines (age), and ``procedures`` (rule set v2) only says whether a
previous liver resection is recorded: the failure of either becomes a data-quality note and
the call goes on, and :attr:`PrefetchResult.complete_keys` tells the engine which keys'
data it has in full (without ``procedures`` the card says previous liver surgery could not
be checked). Keys are fetched concurrently; the first essential failure cancels the rest.

Everything is bounded by the call's ``deadline`` (``time.monotonic()`` value), the page
limit, the per-page byte limit and the resource limit of :class:`Settings`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from service.notes import DataQualityNote
from service.observability import get_logger
from service.settings import Settings

from .bundle import BundleShapeError, next_link, outcome_codes, outcome_text, unpack
from .client import (
    FetchError,
    FhirClients,
    count_failure,
    get_json,
    join_url,
    normalise_base,
    same_base,
)
from .template import TemplateError, render

__all__ = [
    "OPTIONAL_KEYS",
    "DataUnavailable",
    "PrefetchResult",
    "PrefetchShapeError",
    "resolve",
    "unresolved_keys",
]

log: Final = get_logger("fhir.prefetch")

OPTIONAL_KEYS: Final[frozenset[str]] = frozenset({"patient", "procedures"})
"""Keys whose absence only refines the assessment (age; previous liver surgery, which the
card then says could not be checked); every other key is essential."""

_GRACE_S: Final = 0.5
"""Slack after the deadline before unfinished fetches are abandoned outright.

Every request already stops at the deadline; this only guards against a fetch stuck in
work between requests, so the call never hangs whatever happens."""


class PrefetchShapeError(Exception):
    """A prefetch value is not a resource, a Bundle or null, or a prefetched next link or
    ``fhirServer`` cannot be requested (-> 400: the caller's request is wrong)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DataUnavailable(Exception):
    """Essential data could not be obtained (-> 412); ``message`` names the keys and why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class PrefetchResult:
    resources: list[dict[str, Any]]
    """Every data resource of every key, Bundles unpacked, in template order."""
    notes: list[DataQualityNote]
    """Skipped entries, OperationOutcome issue text, optional keys missing or incomplete."""
    fetched_keys: tuple[str, ...]
    """Keys whose data came (completely) from the FHIR server."""
    complete_keys: tuple[str, ...] = ()
    """Keys whose data the call has in full: sent (null counts: "no data") or fetched,
    every page. A key not here was not sent and could not be fetched, or only in part."""

    def complete(self, key: str) -> bool:
        """This key's data is complete (e.g. ``"procedures"``: previous surgery checked)."""
        return key in self.complete_keys


@dataclass
class _Plan:
    """What remains to fetch for one key."""

    key: str
    url: str
    expected_type: str | None
    """Resource type a read answers with; ``None`` for a search (a Bundle)."""
    pages_done: int = 0
    resources: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Outcome:
    plan: _Plan
    notes: list[DataQualityNote] = field(default_factory=list)
    error: FetchError | None = None


class _ResourceBudget:
    """Resources still accepted in this call (prefetch and fetched pages together)."""

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining

    def take(self, count: int) -> bool:
        self.remaining -= count
        return self.remaining >= 0


def expected_type(rendered: str) -> str | None:
    """``Patient/123`` is a read of a Patient; anything else is a search (a Bundle)."""
    path, _, query = rendered.lstrip("/").partition("?")
    segments = [s for s in path.split("/") if s]
    if query or len(segments) != 2 or segments[0][:1] in ("$", "_"):
        return None
    return segments[0]


def unresolved_keys(
    templates: Mapping[str, str],
    prefetch: Mapping[str, Any] | None,
    optional_keys: Collection[str] = OPTIONAL_KEYS,
) -> list[str]:
    """The essential keys whose data ``prefetch`` does not hold in full, as :func:`resolve`
    reads it: not sent, sent as an OperationOutcome (the EHR could not prefetch it), or
    only the first page of a search (a Bundle with a ``next`` link). Without a FHIR server
    to fetch them from, each is a 412.

    The HTTP layer asks this before it decides whether a call whose ``fhirServer`` it may
    not use can go on from the prefetch alone; it must read the prefetch as ``resolve`` does.
    """
    given: Mapping[str, Any] = prefetch or {}
    keys = []
    for key in templates:
        if key in optional_keys:
            continue
        if key not in given:
            keys.append(key)
            continue
        value = given[key]
        kind = value.get("resourceType") if isinstance(value, dict) else None
        if kind == "OperationOutcome" or (kind == "Bundle" and next_link(value) is not None):
            keys.append(key)
    return keys


def _quote_keys(keys: Collection[str]) -> str:
    names = [f"'{k}'" for k in keys]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


async def resolve(
    *,
    templates: Mapping[str, str],
    prefetch: Mapping[str, Any] | None,
    context: Mapping[str, Any],
    fhir_server: str | None,
    access_token: str | None,
    user_id: str | None,
    clients: FhirClients | None,
    settings: Settings,
    deadline: float,
    optional_keys: Collection[str] = OPTIONAL_KEYS,
) -> PrefetchResult:
    """The resources of every prefetch key of ``templates`` for one hook call.

    A key present in ``prefetch`` is unpacked (a resource, a Bundle, or null = no data);
    a key absent is rendered with ``context`` and fetched from ``fhir_server`` with the
    bearer ``access_token`` (no Authorization header without one). A prefetched Bundle
    with a ``next`` link is completed from ``fhir_server`` the same way. Without
    ``clients`` (prefetch only: the CLI, tests) nothing is fetched, as without a server.
    """
    if clients is None:
        fhir_server = None
    given: Mapping[str, Any] = {} if prefetch is None else prefetch
    if not isinstance(given, Mapping):
        raise PrefetchShapeError("prefetch must be an object")

    by_key: dict[str, list[dict[str, Any]]] = {}
    notes: list[DataQualityNote] = []
    plans: dict[str, _Plan] = {}
    continued: dict[str, str] = {}  # key -> next link of a prefetched page
    missing: list[str] = []
    failed: dict[str, str] = {}  # key -> issue text of the OperationOutcome sent for it
    count = 0

    for key in templates:
        if key not in given:
            missing.append(key)
            continue
        value = given[key]
        where = f"prefetch '{key}'"
        if isinstance(value, dict) and value.get("resourceType") == "OperationOutcome":
            failure = outcome_text(value)  # for the 412 and the note, back to the EHR
            log.info(
                "prefetch value is an OperationOutcome",
                extra={"key": key, "issues": outcome_codes(value)},
            )
            failed[key] = failure
            missing.append(key)
            continue
        _check_prefetch_type(value, where, templates[key])
        try:
            unpacked = unpack(value, where)
        except BundleShapeError as exc:
            raise PrefetchShapeError(exc.message) from None
        by_key[key] = unpacked.resources
        notes.extend(unpacked.notes)
        count += len(unpacked.resources)
        if unpacked.next_url is not None:
            continued[key] = unpacked.next_url
    if count > settings.max_resources:
        raise PrefetchShapeError(
            f"prefetch holds {count} resources, more than the limit of {settings.max_resources}"
        )

    essential_missing = [k for k in missing if k not in optional_keys]
    essential_continued = [k for k in continued if k not in optional_keys]
    if not fhir_server:
        if essential_missing or essential_continued:
            parts = []
            not_sent = [k for k in essential_missing if k not in failed]
            if not_sent:
                parts.append(f"prefetch is missing {_quote_keys(not_sent)}")
            for key in essential_missing:
                if key in failed:
                    parts.append(
                        f"prefetch '{key}' is an OperationOutcome (the EHR could not prefetch "
                        f"it: {failed[key]})"
                    )
            if essential_continued:
                parts.append(
                    f"prefetch {_quote_keys(essential_continued)} is only the first page "
                    "(its Bundle has a next link)"
                )
            raise DataUnavailable(
                " and ".join(parts) + ", and the request gives no fhirServer to fetch from"
            )
        for key in missing:
            why = f"the EHR reported a problem: {failed[key]}" if key in failed else "not sent"
            notes.append(
                DataQualityNote(f"prefetch '{key}'", f"{why}, and no fhirServer to fetch it from")
            )
        for key in continued:
            notes.append(
                DataQualityNote(
                    f"prefetch '{key}'",
                    "only the first page was sent, and no fhirServer to fetch the rest from",
                )
            )
        sent = tuple(k for k in templates if k in by_key and k not in continued)
        return _result(templates, by_key, notes, (), sent)

    base = fhir_server.rstrip("/")
    if missing or continued:  # something will be requested from it
        _check_usable(base)
    for key in missing:
        try:
            rendered = render(templates[key], context, user_id)
        except TemplateError as exc:
            if key not in optional_keys:
                raise DataUnavailable(
                    f"the query for '{key}' cannot be built: {exc.message}"
                ) from None
            notes.append(DataQualityNote(f"prefetch '{key}'", f"not fetched: {exc.message}"))
            continue
        plans[key] = _Plan(key, join_url(base, rendered), expected_type(rendered))
    for key, link in continued.items():
        try:
            next_url = str(httpx.URL(base + "/").join(link))
        except (httpx.InvalidURL, ValueError):  # idna's errors are ValueErrors
            raise PrefetchShapeError(
                f"prefetch '{key}' has a next link that is not a URL"
            ) from None
        plan = _Plan(key, next_url, None, pages_done=1)
        plan.resources = by_key.pop(key)
        plans[key] = plan

    assert clients is not None  # no clients -> no fhir_server (see above)
    budget = _ResourceBudget(settings.max_resources - count)
    outcomes = await _fetch_all(
        plans.values(),
        base=base,
        access_token=access_token,
        clients=clients,
        settings=settings,
        deadline=deadline,
        budget=budget,
        optional_keys=optional_keys,
    )
    fetched: list[str] = []
    for outcome in outcomes:
        key = outcome.plan.key
        notes.extend(outcome.notes)
        by_key[key] = outcome.plan.resources
        if outcome.error is None:
            fetched.append(key)
        else:
            notes.append(
                DataQualityNote(
                    f"FHIR server '{key}'",
                    f"not (completely) fetched: {caller_detail(outcome.error, settings)}; "
                    "the assessment goes on without it",
                )
            )
    fetched_keys = tuple(k for k in templates if k in fetched)
    complete = tuple(
        k
        for k in templates
        if k in fetched or (k in given and k not in missing and k not in continued)
    )
    return _result(templates, by_key, notes, fetched_keys, complete)


def _check_usable(base: str) -> None:
    """Refuse (400) a ``fhirServer`` httpx cannot send requests to.

    The protocol layer checked it is an absolute http(s) URL (``urllib``'s reading); httpx
    is stricter (IDNA 2008 host names: ``https://xn--a.com``, ``https://。.org``), and a
    base it cannot parse would fail in the client pool as an unexpected fault (a 500).
    """
    try:
        normalise_base(base)
    except (httpx.InvalidURL, ValueError):  # idna's errors are ValueErrors
        raise PrefetchShapeError(
            "fhirServer is not a URL the service can send requests to"
        ) from None


_SEARCH_BUNDLE_TYPES: Final = frozenset({"searchset", "collection"})
"""Bundle types that hold data; ``transaction``, ``batch`` and the like hold requests."""


def _check_prefetch_type(value: Any, where: str, template: str) -> None:
    """Refuse (400) a prefetch value that cannot be the answer to its template's query.

    The answer to ``Patient/{{context.patientId}}`` is a Patient; the answer to a search
    ``Condition?patient=...`` is a searchset Bundle, or a single Condition (fhir-mapping.md
    §1 allows a single resource). A Patient sent as the Conditions, or a transaction Bundle,
    is a caller's mistake that must not be read as "this patient has no Conditions".
    Shapes that are not objects at all are left to :func:`unpack`, which names them.
    """
    if not isinstance(value, dict):
        return
    resource_type = value.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        return  # unpack() names it
    expected = template.lstrip("/").partition("?")[0].partition("/")[0]
    is_read = expected_type(template) is not None
    if resource_type == "Bundle":
        bundle_type = value.get("type")
        if isinstance(bundle_type, str) and bundle_type not in _SEARCH_BUNDLE_TYPES:
            raise PrefetchShapeError(
                f"{where} is a Bundle of type {bundle_type[:40]!r}; expected a searchset Bundle"
            )
        return
    if resource_type != expected:
        kind = f"a {expected} resource" if is_read else f"a searchset Bundle of {expected}"
        raise PrefetchShapeError(
            f"{where} must be {kind} (or null), not a {resource_type[:40]} resource"
        )


def _result(
    templates: Mapping[str, str],
    by_key: Mapping[str, list[dict[str, Any]]],
    notes: list[DataQualityNote],
    fetched_keys: tuple[str, ...],
    complete_keys: tuple[str, ...],
) -> PrefetchResult:
    resources = [r for key in templates for r in by_key.get(key, ())]
    # DEBUG: every hook call already logs one INFO line (app.py "hook call", which carries
    # the fetched keys); a second INFO line per call cost measurable time on small charts.
    log.debug(
        "prefetch resolved",
        extra={
            "keys": list(templates),
            "fetched_keys": list(fetched_keys),
            "resources": len(resources),
            "notes": len(notes),
        },
    )
    return PrefetchResult(
        resources=resources,
        notes=notes,
        fetched_keys=fetched_keys,
        complete_keys=complete_keys,
    )


async def _fetch_all(
    plans: Collection[_Plan],
    *,
    base: str,
    access_token: str | None,
    clients: FhirClients,
    settings: Settings,
    deadline: float,
    budget: _ResourceBudget,
    optional_keys: Collection[str],
) -> list[_Outcome]:
    """Fetch every plan concurrently; raise :class:`DataUnavailable` on the first
    essential failure (cancelling the others)."""
    if not plans:
        return []
    client = clients.for_base(base)
    tasks = {
        asyncio.create_task(
            _fetch_key(
                plan,
                client=client,
                base=base,
                access_token=access_token,
                settings=settings,
                deadline=deadline,
                budget=budget,
            ),
            name=f"fhir-fetch-{plan.key}",
        ): plan
        for plan in plans
    }
    outcomes: list[_Outcome] = []
    try:
        pending: set[asyncio.Task[_Outcome]] = set(tasks)
        while pending:
            wait_s = max(0.0, deadline - time.monotonic()) + _GRACE_S
            done, pending = await asyncio.wait(
                pending, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:  # past the deadline and the grace: abandon what is left
                for task in pending:
                    count_failure("budget")
                    outcomes.append(
                        _Outcome(
                            tasks[task],
                            error=FetchError("budget", "the call's time budget ran out"),
                        )
                    )
                pending = set()
            for task in done:
                outcomes.append(task.result())
            for outcome in outcomes:
                if outcome.error is not None and outcome.plan.key not in optional_keys:
                    raise DataUnavailable(
                        f"could not obtain '{outcome.plan.key}' from the FHIR server: "
                        f"{caller_detail(outcome.error, settings)}"
                    )
    finally:
        unfinished = [t for t in tasks if not t.done()]
        for task in unfinished:
            task.cancel()
        if unfinished:
            await asyncio.gather(*unfinished, return_exceptions=True)
    order = {plan.key: i for i, plan in enumerate(plans)}
    return sorted(outcomes, key=lambda o: order[o.plan.key])


async def _fetch_key(
    plan: _Plan,
    *,
    client: httpx.AsyncClient,
    base: str,
    access_token: str | None,
    settings: Settings,
    deadline: float,
    budget: _ResourceBudget,
) -> _Outcome:
    """Fetch one key page by page; never raises (a failure is ``_Outcome.error``)."""
    outcome = _Outcome(plan)
    url: str | None = plan.url
    seen: set[str] = set()
    try:
        while url is not None:
            if plan.pages_done >= settings.fhir_max_pages:
                raise _limit("paging", f"there are more than {settings.fhir_max_pages} pages")
            if not same_base(url, base):
                if url == plan.url and plan.pages_done == 0:
                    raise _limit("paging", "the query would leave fhirServer (not requested)")
                raise _limit("paging", "a next link points outside fhirServer (not followed)")
            if url in seen:
                raise _limit("paging", "the server's next links repeat")
            seen.add(url)
            body = await get_json(
                client,
                url,
                access_token=access_token,
                deadline=deadline,
                settings=settings,
                base_url=base,
            )
            plan.pages_done += 1
            url = _read_page(plan, url, body, outcome, budget, settings)
    except FetchError as exc:
        outcome.error = exc
    except Exception as exc:  # a bug must not become a 500 for the clinician
        count_failure("body")
        log.error(
            "FHIR fetch failed unexpectedly",
            extra={"key": plan.key, "exc_type": type(exc).__name__},
        )
        outcome.error = FetchError("body", "the response could not be read")
    return outcome


def _limit(reason: str, detail: str, *, logged: str | None = None) -> FetchError:
    """Count and log a fetch stopped by a check of ours; ``logged`` replaces ``detail`` in
    the log when the detail quotes the server (an OperationOutcome's text can name the
    patient)."""
    count_failure(reason)
    log.warning("FHIR fetch stopped", extra={"reason": reason, "detail": logged or detail})
    return FetchError(reason, detail)


UNIFORM_DETAIL: Final = (
    "the FHIR server could not be reached or gave no usable FHIR answer "
    "(the service log names the reason)"
)
"""What a caller is told of any network-level fetch failure while authentication is off."""
_UNIFORM_REASONS: Final = frozenset(
    {"connect", "network", "timeout", "budget", "status", "body", "size"}
)


def caller_detail(error: FetchError, settings: Settings) -> str:
    """The words of a fetch failure that go back to the caller (412 message, card note).

    With ``LIVER_CDS_AUTH=off`` anyone may call and name any https host, or a loopback
    port over http, as ``fhirServer``. "could not be reached" for a closed port but "the
    connection failed", "did not answer within 2 s", "HTTP 404" or "not JSON" for an open
    one would turn the service into a port scanner, so every failure before a usable FHIR
    answer reads the same; the log keeps the reason. With authentication required the
    caller is a trusted EHR and ``fhirServer`` is on its issuer's list: it gets the detail
    it needs to fix its integration. (The time taken still differs: a refused connection
    fails at once, a silent port at ``LIVER_CDS_FHIR_TIMEOUT_S``.)
    """
    if settings.auth != "required" and error.reason in _UNIFORM_REASONS:
        return UNIFORM_DETAIL
    return error.detail


def _read_page(
    plan: _Plan,
    page_url: str,
    body: Any,
    outcome: _Outcome,
    budget: _ResourceBudget,
    settings: Settings,
) -> str | None:
    """Add one fetched page's resources to ``plan``; return the next URL, made absolute
    against ``page_url`` (servers may send relative links)."""
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise _limit("body", "the response is not a FHIR resource")
    kind = body["resourceType"][:40]  # the server's string: quoted short in the 412 and log
    if kind == "OperationOutcome":
        raise _limit(
            "body",
            f"the server answered with an OperationOutcome ({outcome_text(body)})",
            logged=f"the server answered with an OperationOutcome ({outcome_codes(body)})",
        )
    if plan.expected_type is not None:
        if kind != plan.expected_type:
            raise _limit("body", f"a read of {plan.expected_type} answered with a {kind}")
        if not budget.take(1):
            raise _limit("limit", f"more than {settings.max_resources} resources")
        plan.resources.append(body)
        return None
    if kind != "Bundle":
        raise _limit("body", f"a search answered with a {kind}, not a Bundle")
    try:
        unpacked = unpack(body, f"FHIR server '{plan.key}' page {plan.pages_done}")
    except BundleShapeError as exc:
        raise _limit("body", exc.message) from None
    if not budget.take(len(unpacked.resources)):
        raise _limit("limit", f"more than {settings.max_resources} resources")
    plan.resources.extend(unpacked.resources)
    outcome.notes.extend(unpacked.notes)
    if unpacked.next_url is None:
        return None
    return str(httpx.URL(page_url).join(unpacked.next_url))
