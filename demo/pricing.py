"""Made-up prices (USD) and monthly budgets, exported by the API and the worker.

Prices are exported as ``usage_unit_price`` and budgets as
``usage_monthly_budget_units``; cost is derived in PromQL from
``usage_units_total`` (see docs/external-usage-resources.md).
"""

from __future__ import annotations

from promkit import PriceTable, set_monthly_budgets

LLM_PROVIDER = "fakeai"
LLM_MODEL = "fake-small"
OCR_PROVIDER = "fakeocr"

PRICES = PriceTable({
    ("llm_tokens", LLM_PROVIDER, LLM_MODEL, "input"): 0.5e-6,     # per token
    ("llm_tokens", LLM_PROVIDER, LLM_MODEL, "output"): 1.5e-6,
    ("ocr_pages", OCR_PROVIDER): 0.0015,                          # per page
    ("cpu_seconds", "", "", "ocr"): 0.05 / 3600,                  # 0.05 per CPU-hour
}, currency="USD")

# About twice what the demo's traffic could use in a whole month at its fastest (two threads,
# one flow per 0.15 s: <= 0.9 B tokens, <= 26 M pages; a 10-minute run measured 0.79 B and
# 23 M a month). The report projects month-end use as used / elapsed share of the month, at
# most the run's rate x a month, so a healthy run never projects past a budget, whatever the
# day of the month.
BUDGETS = {"llm_tokens": 2_000_000_000, "ocr_pages": 60_000_000, "cpu_seconds": 100 * 3600}


def export() -> None:
    PRICES.export()
    set_monthly_budgets(BUDGETS)
