"""The HTTP API: server, OpenAPI document, Alertmanager payloads and the CLI's client."""
