"""Health probes for load balancers and process managers: /healthz and /readyz."""
