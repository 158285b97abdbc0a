"""The admin REST API: send (through the outbox), messages and statuses, conversations, contacts, flows,
templates, handoff, campaigns; `/healthz`, `/readyz`, `/metrics`. OpenAPI at `/docs`.

    from waflow.api import ApiContext, create_api
    app = create_api(ApiContext(store=store, clients={pnid: client}, key_hashes=[hash_api_key("...")]))
"""

from waflow.api.app import create_api
from waflow.api.auth import key_matches
from waflow.api.context import ApiContext
from waflow.api.deploying import DeployResult, FlowRejected, deploy_files, deploy_text, flow_files
from waflow.api.errors import ApiError

__all__ = [
    "ApiContext",
    "ApiError",
    "DeployResult",
    "FlowRejected",
    "create_api",
    "deploy_files",
    "deploy_text",
    "flow_files",
    "key_matches",
]
