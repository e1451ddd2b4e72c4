"""Usage and cost: billable units, unit prices and monthly budgets.

Usage is counted in ``usage_units_total{resource, provider, model, role}``
(LLM tokens, OCR pages, audio seconds, CPU seconds...). Prices are not
multiplied in the process: a :class:`PriceTable` is exported as
``usage_unit_price`` gauges with the same labels, so cost is derived where the
data is, in PromQL::

    sum by (resource, provider, model, role) (rate(usage_units_total[1h]))
      * on (resource, provider, model, role) group_left usage_unit_price

Monthly budgets (in usage units) are exported as
``usage_monthly_budget_units{resource}``. The pure helpers at the end
(:func:`month_to_date_cost`, :func:`projected_month_end`,
:func:`budget_forecast`) compute the report's figures from numbers read back
from Prometheus or from a counter snapshot.

Recording never raises: a negative or NaN amount is counted in
``promkit_instrumentation_errors_total`` and dropped. Building a price table
or a budget with bad values raises :class:`PriceError` at once, naming the
entry.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from promkit.instrument.metrics import Counter, Gauge, Histogram
from promkit.instrument.registry import MetricsRegistry, catalog_metric, default_registry

__all__ = [
    "BudgetForecast",
    "PriceError",
    "PriceKey",
    "PriceTable",
    "budget_forecast",
    "month_bounds",
    "month_elapsed_fraction",
    "month_to_date_cost",
    "projected_month_end",
    "record_cpu_seconds",
    "record_llm_duration",
    "record_llm_tokens",
    "record_usage",
    "set_monthly_budgets",
]

PriceKey = tuple[str, str, str, str]
"""``(resource, provider, model, role)``, the labels of ``usage_units_total``."""

LLM_TOKENS = "llm_tokens"
CPU_SECONDS = "cpu_seconds"

_USAGE = "usage_units_total"
_PRICE = "usage_unit_price"
_BUDGET = "usage_monthly_budget_units"
_GENAI_TOKENS = "gen_ai_client_tokens_total"
_GENAI_DURATION = "gen_ai_client_operation_duration_seconds"

_RECORD_FIELDS = ("resource", "provider", "model", "role", "price")


class PriceError(ValueError):
    """A price table, budget or cost computation was given something it cannot use."""


def _registry(registry: MetricsRegistry | None) -> MetricsRegistry:
    return registry if registry is not None else default_registry()


# ---------------------------------------------------------------------- recording


def record_usage(resource: str, amount: float, *, provider: str = "", model: str = "",
                 role: str = "", registry: MetricsRegistry | None = None) -> None:
    """Add ``amount`` units of ``resource`` (e.g. ``"ocr_pages"``, ``"audio_seconds"``).

    Never raises: a negative or NaN amount is counted as an instrumentation
    failure and dropped.
    """
    reg = _registry(registry)
    try:
        catalog_metric(reg, Counter, _USAGE).labels(resource, provider, model, role).inc(amount)
    except Exception as exc:
        reg.failures.failure("usage_record", exc)


def record_llm_tokens(provider: str, model: str, input_tokens: int, output_tokens: int, *,
                      registry: MetricsRegistry | None = None) -> None:
    """Count one LLM call's tokens.

    Records ``usage_units_total{resource="llm_tokens", role="input"|"output"}``
    (priced by the price table) and the OpenTelemetry-named
    ``gen_ai_client_tokens_total{gen_ai_token_type="input"|"output"}``. A zero
    count is recorded too, so both series exist from the first call.
    """
    reg = _registry(registry)
    try:
        usage = catalog_metric(reg, Counter, _USAGE)
        tokens = catalog_metric(reg, Counter, _GENAI_TOKENS)
        for role, amount in (("input", input_tokens), ("output", output_tokens)):
            usage.labels(LLM_TOKENS, provider, model, role).inc(amount)
            tokens.labels(provider, model, role).inc(amount)
    except Exception as exc:
        reg.failures.failure("usage_llm_tokens", exc)


def record_llm_duration(provider: str, model: str, seconds: float, *, operation: str = "chat",
                        registry: MetricsRegistry | None = None) -> None:
    """Observe one LLM call's duration in ``gen_ai_client_operation_duration_seconds``."""
    reg = _registry(registry)
    try:
        durations = catalog_metric(reg, Histogram, _GENAI_DURATION)
        durations.labels(provider, model, operation).observe(seconds)
    except Exception as exc:
        reg.failures.failure("usage_llm_duration", exc)


def record_cpu_seconds(seconds: float, *, provider: str = "", model: str = "", role: str = "",
                       registry: MetricsRegistry | None = None) -> None:
    """Add CPU seconds to ``usage_units_total{resource="cpu_seconds"}``.

    Put the stage (or job type) in ``role`` to compare stages against a
    CPU-hours budget; ``provider`` can name where it ran (``"fly"``, ``"gpu-pool"``).
    """
    record_usage(CPU_SECONDS, seconds, provider=provider, model=model, role=role,
                 registry=registry)


# ------------------------------------------------------------------- price table


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PriceError(f"{where}: must be a number, not {type(value).__name__} {value!r}")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise PriceError(f"{where}: must be a finite number, not {number}")
    if number < 0:
        raise PriceError(f"{where}: must not be negative, got {number}")
    return number


def _key(key: object) -> PriceKey:
    """Normalise ``"resource"`` or ``(resource[, provider[, model[, role]]])`` to a 4-tuple."""
    parts: tuple[object, ...]
    if isinstance(key, str):
        parts = (key,)
    elif isinstance(key, tuple):
        parts = key
    else:
        raise PriceError(
            f"price table key {key!r}: use a tuple (resource, provider, model, role) or a "
            f"resource name, not a {type(key).__name__}")
    if not 1 <= len(parts) <= 4:
        raise PriceError(
            f"price table key {key!r} has {len(parts)} parts; use (resource, provider, model, "
            "role), where the trailing ones may be left out")
    for name, part in zip(("resource", "provider", "model", "role"), parts):
        if not isinstance(part, str):
            raise PriceError(f"price table key {key!r}: {name} must be a string, not {part!r}")
    if not parts[0]:
        raise PriceError(f"price table key {key!r}: the resource is empty")
    padded = (*parts, "", "", "")[:4]
    return (str(padded[0]), str(padded[1]), str(padded[2]), str(padded[3]))


class PriceTable(Mapping[PriceKey, float]):
    """Price per usage unit by ``(resource, provider, model, role)``.

    Keys match the labels of ``usage_units_total`` exactly, as PromQL's
    ``on(resource, provider, model, role)`` does; trailing parts may be left
    out and mean ``""`` (``("cpu_seconds",)`` prices unlabelled CPU seconds).
    Prices must be finite and non-negative; a key given twice (e.g. ``"x"``
    and ``("x", "")``) is an error. Every price is in ``currency``.
    """

    def __init__(self, prices: Mapping[PriceKey | tuple[str, ...] | str, float],
                 currency: str = "USD") -> None:
        if not isinstance(currency, str) or not currency.strip():
            raise PriceError(f"currency must be a non-empty string such as 'USD', not "
                             f"{currency!r}")
        if not isinstance(prices, Mapping):
            raise PriceError(f"prices must be a mapping of key -> price, not "
                             f"{type(prices).__name__}")
        self.currency = currency
        self._prices: dict[PriceKey, float] = {}
        for raw_key, price in prices.items():
            key = _key(raw_key)
            if key in self._prices:
                raise PriceError(f"price table key {raw_key!r} duplicates {key!r}")
            self._prices[key] = _number(price, f"price of {key!r}")

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, object]],
                     currency: str = "USD") -> PriceTable:
        """Build from dicts as found in a JSON/TOML config:
        ``{"resource": "llm_tokens", "provider": "openai", "model": "gpt-4o",
        "role": "input", "price": 2.5e-6}``; unknown fields are an error."""
        prices: dict[PriceKey | tuple[str, ...] | str, float] = {}
        for i, record in enumerate(records):
            where = f"price record {i}"
            if not isinstance(record, Mapping):
                raise PriceError(f"{where}: must be a mapping, not {type(record).__name__}")
            unknown = sorted(set(record) - set(_RECORD_FIELDS))
            if unknown:
                raise PriceError(f"{where}: unknown field(s) {unknown}; allowed are "
                                 f"{list(_RECORD_FIELDS)}")
            for required in ("resource", "price"):
                if required not in record:
                    raise PriceError(f"{where}: missing {required!r}")
            parts = tuple(record.get(name, "") for name in _RECORD_FIELDS[:4])
            key = _key(parts)
            if key in prices:
                raise PriceError(f"{where}: duplicates the price of {key!r}")
            prices[key] = _number(record["price"], f"{where} ({key!r}): price")
        return cls(prices, currency)

    def __getitem__(self, key: PriceKey) -> float:
        return self._prices[_key(key)]

    def __contains__(self, key: object) -> bool:
        try:
            return _key(key) in self._prices
        except PriceError:
            return False

    def __iter__(self) -> Iterator[PriceKey]:
        return iter(self._prices)

    def __len__(self) -> int:
        return len(self._prices)

    def __repr__(self) -> str:
        return f"PriceTable({self._prices!r}, currency={self.currency!r})"

    def price(self, resource: str, provider: str = "", model: str = "",
              role: str = "") -> float | None:
        """The price of one unit, or None when the table has no price for it."""
        return self._prices.get((resource, provider, model, role))

    def export(self, registry: MetricsRegistry | None = None) -> None:
        """Set one ``usage_unit_price`` gauge per entry (call at startup; never raises)."""
        reg = _registry(registry)
        try:
            gauge = catalog_metric(reg, Gauge, _PRICE)
            for (resource, provider, model, role), price in self._prices.items():
                gauge.labels(resource, provider, model, role).set(price)
        except Exception as exc:
            reg.failures.failure("usage_price_export", exc)


def set_monthly_budgets(budgets: Mapping[str, float], *,
                        registry: MetricsRegistry | None = None) -> dict[str, float]:
    """Export ``usage_monthly_budget_units{resource}`` for each resource; returns them validated.

    Budgets are in the resource's own units: 100 CPU-hours is
    ``{"cpu_seconds": 100 * 3600}``. Bad values raise :class:`PriceError`.
    """
    validated: dict[str, float] = {}
    for resource, units in budgets.items():
        if not isinstance(resource, str) or not resource:
            raise PriceError(f"budget key {resource!r}: must be a non-empty resource name")
        validated[resource] = _number(units, f"monthly budget of {resource!r}")
    reg = _registry(registry)
    try:
        gauge = catalog_metric(reg, Gauge, _BUDGET)
        for resource, units in validated.items():
            gauge.labels(resource).set(units)
    except Exception as exc:
        reg.failures.failure("usage_budget_export", exc)
    return validated


# -------------------------------------------------------------- report helpers


def month_to_date_cost(usage: Mapping[PriceKey | tuple[str, ...] | str, float],
                       prices: PriceTable, *, ignore_unpriced: bool = False) -> float:
    """The cost of ``usage`` (units per ``(resource, provider, model, role)``).

    ``usage`` is what was used this month, e.g. the result of
    ``sum by (resource, provider, model, role) (increase(usage_units_total[<since month start>]))``.
    Usage with no price raises :class:`PriceError` listing the keys, unless
    ``ignore_unpriced`` (then it costs nothing).
    """
    total = 0.0
    unpriced: list[PriceKey] = []
    for raw_key, units in usage.items():
        key = _key(raw_key)
        amount = _number(units, f"usage of {key!r}")
        price = prices.price(*key)
        if price is None:
            if amount:
                unpriced.append(key)
            continue
        total += amount * price
    if unpriced and not ignore_unpriced:
        raise PriceError(f"no price for {len(unpriced)} usage key(s): "
                         f"{', '.join(map(repr, sorted(unpriced)))}")
    return total


def _utc(now: datetime) -> datetime:
    # Naive datetimes are taken as UTC (datetime.utcnow() style).
    if now.tzinfo is None:
        return now.replace(tzinfo=timezone.utc)
    return now.astimezone(timezone.utc)


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The UTC start of ``now``'s month and the start of the next month."""
    now = _utc(now)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(start.year, start.month)[1]
    return start, start + timedelta(days=days)


def month_elapsed_fraction(now: datetime) -> float:
    """How much of the (UTC) month has passed at ``now``: 0.0 at its first instant, < 1.0."""
    start, end = month_bounds(now)
    return (_utc(now) - start) / (end - start)


def projected_month_end(value_so_far: float, now: datetime) -> float:
    """Linear projection of a month-to-date value to the end of the (UTC) month.

    ``value_so_far / elapsed fraction of the month``. At the month's first
    instant nothing has elapsed to extrapolate from, and ``value_so_far`` is
    returned as is. Naive ``now`` is taken as UTC.
    """
    value = float(value_so_far)
    if math.isnan(value):
        raise PriceError("value_so_far is NaN")
    fraction = month_elapsed_fraction(now)
    if fraction <= 0.0:
        return value
    return value / fraction


@dataclass(frozen=True)
class BudgetForecast:
    """Month-to-date use of a resource against its monthly budget."""

    used: float
    projected: float
    budget: float
    elapsed_fraction: float

    @property
    def used_ratio(self) -> float:
        """Share of the budget used so far (inf for a zero budget with use)."""
        return _ratio(self.used, self.budget)

    @property
    def projected_ratio(self) -> float:
        """Share of the budget the month is projected to use."""
        return _ratio(self.projected, self.budget)

    @property
    def over_budget(self) -> bool:
        """Whether the month is projected to end over budget."""
        return self.projected > self.budget


def _ratio(value: float, budget: float) -> float:
    if budget == 0:
        return 0.0 if value == 0 else math.inf
    return value / budget


def budget_forecast(used: float, budget: float, now: datetime) -> BudgetForecast:
    """Where a resource stands against its monthly budget, and where the month will end."""
    used = _number(used, "used")
    budget = _number(budget, "budget")
    return BudgetForecast(used=used, projected=projected_month_end(used, now), budget=budget,
                          elapsed_fraction=month_elapsed_fraction(now))
