"""The ``promkit`` command's tools: ``init``, ``generate``, ``report``, ``load`` and ``serve``.

They read the catalog and the recording side (:mod:`promkit.instrument`,
:mod:`promkit.exporters`); nothing there imports them. Their own dependencies
(pyyaml, httpx) are imported when a tool runs, never on ``import promkit``.
"""
