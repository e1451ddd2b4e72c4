"""Fake external services on one port (default 127.0.0.1:9098).

- ``POST /v1/chat/completions``: an LLM provider. Answers after 50-300 ms with
  OpenAI-style ``usage`` token counts; about 1% of calls get 429.
- ``POST /v1/ocr``: an OCR-like API. About 3% of calls hang for 3 s (longer
  than the worker's 1 s timeout, so they time out) and 1% get 503.

Not instrumented with promkit: they stand for somebody else's service.
"""

from __future__ import annotations

import asyncio
import os
import random

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from demo import settings

OCR_TIMEOUT_RATE = float(os.environ.get("DEMO_FAKE_OCR_TIMEOUT_RATE", "0.03"))
OCR_ERROR_RATE = float(os.environ.get("DEMO_FAKE_OCR_ERROR_RATE", "0.01"))
LLM_THROTTLE_RATE = float(os.environ.get("DEMO_FAKE_LLM_THROTTLE_RATE", "0.01"))


async def chat(request: Request) -> JSONResponse:
    body = await request.json()
    messages = body.get("messages") or []
    prompt_words = sum(len(str(m.get("content", "")).split()) for m in messages)
    await asyncio.sleep(random.uniform(0.05, 0.3))
    if random.random() < LLM_THROTTLE_RATE:
        return JSONResponse({"error": {"type": "rate_limit", "message": "slow down"}},
                            status_code=429, headers={"retry-after": "1"})
    prompt_tokens = 12 + int(prompt_words * 1.3)
    completion_tokens = random.randint(40, 400)
    return JSONResponse({
        "id": f"chatcmpl-{random.getrandbits(48):012x}",
        "model": body.get("model", "fake-small"),
        "choices": [{"index": 0, "message": {"role": "assistant",
                                             "content": "A short, made-up answer."},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    })


async def ocr(request: Request) -> JSONResponse:
    body = await request.json()
    pages = max(1, min(int(body.get("pages", 1)), 50))
    roll = random.random()
    if roll < OCR_TIMEOUT_RATE:
        await asyncio.sleep(3.0)           # the worker gives up after 1 s
    elif roll < OCR_TIMEOUT_RATE + OCR_ERROR_RATE:
        return JSONResponse({"error": "backend unavailable"}, status_code=503)
    await asyncio.sleep(random.uniform(0.01, 0.04) * pages)
    return JSONResponse({"pages": pages, "confidence": round(random.uniform(0.8, 0.99), 3)})


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(routes=[
    Route("/v1/chat/completions", chat, methods=["POST"]),
    Route("/v1/ocr", ocr, methods=["POST"]),
    Route("/healthz", healthz),
])


def main() -> None:
    import uvicorn

    uvicorn.run(app, host=settings.host(), port=settings.port("fake_services"),
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
