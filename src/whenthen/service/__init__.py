"""`whenthen serve`: the HTTP API, OpenAPI, metrics, the web console and the workers of SPEC 7."""
