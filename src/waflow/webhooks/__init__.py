"""The webhook endpoint Meta calls: handshake, signature, parse, durable deduplicated inbox, 200.

    from waflow.webhooks import WebhookConfig, WebhookReceiver, create_webhook_app

    config = WebhookConfig.single("106540352242922", app_secret="...", verify_token="...")
    app = create_webhook_app(config, store)            # standalone Starlette app at /webhook
    # or, inside a FastAPI app:  receiver = WebhookReceiver(config, store, path="/webhook")
    #                            app.router.routes.extend(receiver.routes)  (+ receiver.lifespan)
"""

from waflow.webhooks.app import WebhookReceiver, create_webhook_app
from waflow.webhooks.config import NumberConfig, WebhookConfig
from waflow.webhooks.persist import DeadLetterRequest, InboxRequest, WriteOutcome, write_requests
from waflow.webhooks.signature import SignatureOutcome, SignatureVerifier, sign, verify_signature
from waflow.webhooks.status import StatusProcessor
from waflow.webhooks.writer import InboxWriter, WriterClosedError, WriterOverloadedError

__all__ = [
    "DeadLetterRequest",
    "InboxRequest",
    "InboxWriter",
    "NumberConfig",
    "SignatureOutcome",
    "SignatureVerifier",
    "StatusProcessor",
    "WebhookConfig",
    "WebhookReceiver",
    "WriteOutcome",
    "WriterClosedError",
    "WriterOverloadedError",
    "create_webhook_app",
    "sign",
    "verify_signature",
    "write_requests",
]
