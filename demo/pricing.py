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

BUDGETS = {"llm_tokens": 50_000_000, "ocr_pages": 200_000, "cpu_seconds": 100 * 3600}


def export() -> None:
    PRICES.export()
    set_monthly_budgets(BUDGETS)
