"""Web: /metrics, /healthz, the live dashboard and the JWT-protected REST API."""
