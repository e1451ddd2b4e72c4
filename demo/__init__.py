"""The promkit demo: an instrumented API, a worker, a webhook receiver and fake
external services, run with Redis, Prometheus and Alertmanager by ``python -m demo.run``
(``make demo``). See demo/README.md."""
