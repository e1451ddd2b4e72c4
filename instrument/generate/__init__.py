"""Generators: Prometheus config, recording/alert/SLO rules (and, from their modules,
Alertmanager config and Kubernetes manifests) from the catalog and a project config."""
