"""Usage units, LLM tokens, price table, budgets and the month-end projection."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from promkit.instrument.usage import (
    PriceError,
    PriceTable,
    budget_forecast,
    month_bounds,
    month_elapsed_fraction,
    month_to_date_cost,
    projected_month_end,
    record_cpu_seconds,
    record_llm_duration,
    record_llm_tokens,
    record_usage,
    set_monthly_budgets,
)

UTC = timezone.utc


def sample(registry, name: str, **labels: str) -> float | None:
    return registry.collector_registry.get_sample_value(name, labels)


def usage(registry, resource: str, provider: str = "", model: str = "",
          role: str = "") -> float | None:
    return sample(registry, "usage_units_total", resource=resource, provider=provider,
                  model=model, role=role)


# ---------------------------------------------------------------------- recording


def test_record_usage_accumulates_by_labels(registry):
    record_usage("ocr_pages", 3, provider="textract", registry=registry)
    record_usage("ocr_pages", 2, provider="textract", registry=registry)
    record_usage("audio_seconds", 12.5, model="tts-1", registry=registry)
    assert usage(registry, "ocr_pages", "textract") == 5
    assert usage(registry, "audio_seconds", model="tts-1") == 12.5


def test_bad_amounts_never_raise_and_are_counted(registry):
    record_usage("ocr_pages", -1, registry=registry)
    record_usage("ocr_pages", float("nan"), registry=registry)
    record_usage("ocr_pages", 1, registry=registry)
    assert usage(registry, "ocr_pages") == 1
    assert sample(registry, "promkit_instrumentation_errors_total",
                  cause="counter_inc:ValueError") == 2


def test_llm_tokens_record_usage_and_gen_ai_tokens(registry):
    record_llm_tokens("openai", "gpt-4o", 120, 30, registry=registry)
    record_llm_tokens("openai", "gpt-4o", 80, 0, registry=registry)
    assert usage(registry, "llm_tokens", "openai", "gpt-4o", "input") == 200
    assert usage(registry, "llm_tokens", "openai", "gpt-4o", "output") == 30
    tokens = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o"}
    assert sample(registry, "gen_ai_client_tokens_total", **tokens,
                  gen_ai_token_type="input") == 200
    assert sample(registry, "gen_ai_client_tokens_total", **tokens,
                  gen_ai_token_type="output") == 30
    record_llm_duration("openai", "gpt-4o", 1.5, registry=registry)
    assert sample(registry, "gen_ai_client_operation_duration_seconds_count",
                  gen_ai_provider_name="openai", gen_ai_request_model="gpt-4o",
                  gen_ai_operation_name="chat") == 1


def test_cpu_seconds_by_stage(registry):
    record_cpu_seconds(1.25, role="ocr", registry=registry)
    record_cpu_seconds(0.75, role="ocr", registry=registry)
    assert usage(registry, "cpu_seconds", role="ocr") == 2.0


# ------------------------------------------------------------------- price table


def test_price_table_keys_lookup_and_export(registry):
    table = PriceTable({
        ("llm_tokens", "openai", "gpt-4o", "input"): 2.5e-6,
        ("llm_tokens", "openai", "gpt-4o", "output"): 1e-5,
        ("cpu_seconds",): 1 / 3600 * 0.05,
        "ocr_pages": 0.0015,
    }, currency="EUR")
    assert table.currency == "EUR" and len(table) == 4
    assert table.price("ocr_pages") == 0.0015
    assert table.price("ocr_pages", "other") is None
    assert table["cpu_seconds"] == table[("cpu_seconds", "", "", "")]
    assert ("ocr_pages",) in table and 42 not in table
    table.export(registry=registry)
    assert sample(registry, "usage_unit_price", resource="llm_tokens", provider="openai",
                  model="gpt-4o", role="output") == 1e-5
    assert sample(registry, "usage_unit_price", resource="ocr_pages", provider="", model="",
                  role="") == 0.0015


@pytest.mark.parametrize(("prices", "message"), [
    ({("llm_tokens", "openai", "gpt-4o", "input"): -1.0},
     r"price of \('llm_tokens', 'openai', 'gpt-4o', 'input'\): must not be negative"),
    ({"ocr_pages": float("nan")}, r"price of \('ocr_pages', '', '', ''\): must be a finite"),
    ({"ocr_pages": float("inf")}, "must be a finite number"),
    ({"ocr_pages": "0.1"}, "must be a number, not str"),
    ({"ocr_pages": True}, "must be a number, not bool"),
    ({("a", "b", "c", "d", "e"): 1.0}, "has 5 parts"),
    ({("a", 3): 1.0}, "provider must be a string"),
    ({("",): 1.0}, "the resource is empty"),
    ({42: 1.0}, "not a int"),
    ({"x": 1.0, ("x", ""): 2.0}, r"duplicates \('x', '', '', ''\)"),
])
def test_price_table_rejects_bad_entries_precisely(prices, message):
    with pytest.raises(PriceError, match=message):
        PriceTable(prices)


def test_price_table_currency_must_be_given():
    with pytest.raises(PriceError, match="currency"):
        PriceTable({}, currency="")


def test_price_table_from_records():
    table = PriceTable.from_records([
        {"resource": "llm_tokens", "provider": "anthropic", "model": "claude", "role": "input",
         "price": 3e-6},
        {"resource": "ocr_pages", "price": 0.002},
    ])
    assert table.price("llm_tokens", "anthropic", "claude", "input") == 3e-6
    assert table.price("ocr_pages") == 0.002
    with pytest.raises(PriceError, match=r"price record 0: unknown field\(s\) \['cost'\]"):
        PriceTable.from_records([{"resource": "x", "cost": 1}])
    with pytest.raises(PriceError, match="price record 1: missing 'price'"):
        PriceTable.from_records([{"resource": "x", "price": 1}, {"resource": "y"}])
    with pytest.raises(PriceError, match="price record 1: duplicates"):
        PriceTable.from_records([{"resource": "x", "price": 1}, {"resource": "x", "price": 2}])
    with pytest.raises(PriceError, match=r"price record 0 .*: must not be negative"):
        PriceTable.from_records([{"resource": "x", "price": -2}])


def test_monthly_budgets_are_validated_and_exported(registry):
    assert set_monthly_budgets({"cpu_seconds": 100 * 3600}, registry=registry) == {
        "cpu_seconds": 360000.0}
    assert sample(registry, "usage_monthly_budget_units", resource="cpu_seconds") == 360000
    with pytest.raises(PriceError, match="monthly budget of 'x': must not be negative"):
        set_monthly_budgets({"x": -1}, registry=registry)
    with pytest.raises(PriceError, match="non-empty resource name"):
        set_monthly_budgets({"": 1}, registry=registry)


# ----------------------------------------------------------------- report helpers


def test_month_to_date_cost():
    table = PriceTable({("llm_tokens", "openai", "gpt-4o", "input"): 2e-6,
                        ("llm_tokens", "openai", "gpt-4o", "output"): 8e-6,
                        "cpu_seconds": 0.0001})
    used = {("llm_tokens", "openai", "gpt-4o", "input"): 1_000_000,
            ("llm_tokens", "openai", "gpt-4o", "output"): 250_000,
            "cpu_seconds": 36_000}
    assert month_to_date_cost(used, table) == pytest.approx(2.0 + 2.0 + 3.6)
    unpriced = {**used, ("ocr_pages", "textract"): 10, "audio_seconds": 0}
    with pytest.raises(PriceError, match=r"no price for 1 usage key\(s\): "
                                         r"\('ocr_pages', 'textract', '', ''\)"):
        month_to_date_cost(unpriced, table)
    assert month_to_date_cost(unpriced, table, ignore_unpriced=True) == pytest.approx(7.6)
    with pytest.raises(PriceError, match="must not be negative"):
        month_to_date_cost({"cpu_seconds": -1}, table)


@pytest.mark.parametrize(("year", "month", "days"), [
    (2026, 2, 28), (2028, 2, 29), (2000, 2, 29), (2100, 2, 28), (2026, 4, 30), (2026, 1, 31),
    (2026, 12, 31),
])
def test_month_bounds_and_projection_for_every_month_length(year, month, days):
    start, end = month_bounds(datetime(year, month, 15, 12, tzinfo=UTC))
    assert start == datetime(year, month, 1, tzinfo=UTC)
    assert end - start == timedelta(days=days)
    assert end == (datetime(year + 1, 1, 1, tzinfo=UTC) if month == 12
                   else datetime(year, month + 1, 1, tzinfo=UTC))
    # After exactly one day, the month ends at `days` times the first day's value.
    one_day = start + timedelta(days=1)
    assert projected_month_end(10.0, one_day) == pytest.approx(10.0 * days)
    # Half-way through, it doubles.
    assert projected_month_end(7.0, start + (end - start) / 2) == pytest.approx(14.0)
    # The last microsecond of the month projects (almost) the value itself.
    last = end - timedelta(microseconds=1)
    assert month_elapsed_fraction(last) < 1.0
    assert projected_month_end(5.0, last) == pytest.approx(5.0)


def test_projection_at_the_month_boundary_and_time_zones():
    # The first instant of a month: nothing elapsed, nothing to extrapolate.
    assert month_elapsed_fraction(datetime(2026, 3, 1, tzinfo=UTC)) == 0.0
    assert projected_month_end(3.0, datetime(2026, 3, 1, tzinfo=UTC)) == 3.0
    # 1 March 01:00 in UTC+02:00 is still 28 February in UTC: the February month counts.
    local = datetime(2026, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    start, end = month_bounds(local)
    assert (start.month, end.month) == (2, 3)
    assert month_elapsed_fraction(local) == pytest.approx(1 - 1 / (28 * 24))
    # Naive datetimes are UTC.
    assert month_bounds(datetime(2026, 2, 10)) == (datetime(2026, 2, 1, tzinfo=UTC),
                                                   datetime(2026, 3, 1, tzinfo=UTC))
    with pytest.raises(PriceError, match="NaN"):
        projected_month_end(math.nan, datetime(2026, 2, 10))


def test_budget_forecast():
    # 10 days into a 30-day month, 40 of 100 CPU-hours used: on track for 120.
    now = datetime(2026, 4, 11, tzinfo=UTC)
    forecast = budget_forecast(40 * 3600, 100 * 3600, now)
    assert forecast.elapsed_fraction == pytest.approx(1 / 3)
    assert forecast.projected == pytest.approx(120 * 3600)
    assert forecast.used_ratio == pytest.approx(0.4)
    assert forecast.projected_ratio == pytest.approx(1.2)
    assert forecast.over_budget
    assert not budget_forecast(10, 100, now).over_budget
    assert budget_forecast(0, 0, now).used_ratio == 0.0
    assert budget_forecast(1, 0, now).projected_ratio == math.inf
