"""The composition root: builds every part from the settings and runs them in one process.

    from waflow.config import load_settings
    from waflow.server import create_app, serve, worker

    app = create_app(load_settings())     # ASGI: webhooks at [server].webhook_path, the admin API, /docs,
                                          # /healthz, /readyz, /metrics; the lifespan runs the background parts
    serve(settings)                       # uvicorn, graceful on SIGTERM / SIGINT
    worker(settings)                      # engine + timers + dispatchers + status processor, no HTTP

Modules: `parts` (what is built), `lifecycle` (start / bounded stop), `app` (the ASGI app), `run`
(the processes), `metrics` (process-level gauges and counters), `intake` (the bounded intake in front of the
app: credentials before bodies, body limits and deadlines, rate limits), `protocol` (uvicorn's protocol with
header deadlines and limits, connection limits, the slow lane), `proxies` (trusted `X-Forwarded-*`),
`ratelimit` (token buckets), `testing` (`waflow serve` for tests).
"""

from waflow.server.app import api_context, create_app
from waflow.server.lifecycle import Lifecycle
from waflow.server.parts import Parts, build_parts, engine_config
from waflow.server.run import run_worker, serve, setup_logging, worker

__all__ = [
    "Lifecycle",
    "Parts",
    "api_context",
    "build_parts",
    "create_app",
    "engine_config",
    "run_worker",
    "serve",
    "setup_logging",
    "worker",
]
