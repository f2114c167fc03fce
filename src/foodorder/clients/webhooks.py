"""Client of the providers' status webhooks: one signed POST of an event."""

import time

from foodorder.clients.http import Transient, post
from foodorder.config import get_settings
from foodorder.models import WebhookEvent
from foodorder.signing import EVENT_ID, signed_headers


def event_body(event: WebhookEvent) -> bytes:
    """The event as the webhook receives it: camelCase JSON without the fields it does not have."""
    return event.model_dump_json(by_alias=True, exclude_none=True).encode()


async def post_event(provider: str, event: WebhookEvent) -> None:
    """POST `event` to `provider`'s webhook, signed now; any answer but 2xx may pass later (Transient)."""
    settings = get_settings()
    # Read on every try, not journaled: a corrected URL or a rotated secret applies to the next try.
    webhook = settings.provider_webhooks.get(provider)
    if webhook is None:
        raise Transient(f"provider {provider!r} has no webhook configured (FOODORDER_PROVIDER_WEBHOOKS)")
    body = event_body(event)
    headers = {
        "content-type": "application/json",
        EVENT_ID: event.event_id,
        **signed_headers(webhook.secret, int(time.time()), body),
    }
    what = f"{provider}'s webhook"
    response = await post(
        what, str(webhook.url), content=body, headers=headers, timeout=settings.http_timeout_s
    )
    if not response.is_success:
        # Unlike the POS, a provider's refusal (a 401 while secrets are rotated, a 400 from a bug on
        # its side) is retried too: the event stays owed until the retry window closes.
        raise Transient(f"{what} answered {response.status_code}: {response.text[:200]}")
