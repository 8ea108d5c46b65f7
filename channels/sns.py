"""SMS through AWS SNS (``Publish`` to a phone number), with boto3.

Credentials: explicit keys when given, else boto3's standard chain
(environment, shared files, instance role). A missing library or no
credentials at all make sends raise :class:`~channels.base.ChannelUnavailable`.
"""

from __future__ import annotations

import logging

from channels.base import Channel, ChannelUnavailable, Key, PermanentSendError, Receipt, Section, TransientSendError
from channels.messages import Sms
from channels.phone import check_e164
from channels.registry import register

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
except ImportError as error:  # this channel is disabled, the rest of apptflow is not
    _MISSING_LIBRARY = f"boto3 cannot be imported ({error})"
else:
    _MISSING_LIBRARY = ""

logger = logging.getLogger(__name__)

# Error codes that mean "later": throttling in its several spellings, and AWS's own failures.
_TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "TooManyRequestsException", "RequestLimitExceeded", "InternalError", "InternalFailure",
    "ServiceUnavailable", "KMSThrottling", "RequestTimeout", "RequestTimeoutException",
})


@register
class SnsSmsChannel(Channel):
    """Sends :class:`~channels.messages.Sms` with SNS ``Publish(PhoneNumber=…)``."""

    name = "sns-sms"
    message_type = Sms
    max_body = 1600
    section = Section(name="sns", keys={
        "region": Key(default=""),
        "endpoint_url": Key(default="", kind="url"),  # empty: AWS's own
        "access_key_id": Key(default="", secret=True),  # empty: the standard AWS chain
        "secret_access_key": Key(default="", secret=True),
    })

    @classmethod
    def configured(cls, settings, common):
        return cls(region=settings["region"], endpoint_url=settings["endpoint_url"],
                   access_key_id=settings["access_key_id"], secret_access_key=settings["secret_access_key"])

    def __init__(
        self, *, region: str = "", endpoint_url: str = "", access_key_id: str = "",
        secret_access_key: str = "", session_token: str = "", timeout: float = 30.0,
    ):
        """Empty ``region`` / ``endpoint_url`` / keys: boto3's defaults (``endpoint_url`` for a test server)."""
        self.region, self.endpoint_url, self.access_key_id = region, endpoint_url, access_key_id
        self.unavailable_reason = _MISSING_LIBRARY
        self._client = None
        if not self.unavailable_reason:
            self._client = _client(region, endpoint_url, access_key_id, secret_access_key, session_token, timeout)

    def describe(self) -> str:
        where = f" via {self.endpoint_url}" if self.endpoint_url else ""
        return f"sns-sms ({self.region or 'default region'}){where}"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def check(self, message: Sms) -> None:
        self.check_body(message.body)
        check_e164(message.to)

    def send(self, message: Sms) -> Receipt:
        """Send one SMS; Receipt.provider_id is SNS's MessageId."""
        if self._client is None:
            raise ChannelUnavailable(f"sns-sms: {self.unavailable_reason}")
        self.check(message)
        to = message.to
        try:
            answer = self._client.publish(PhoneNumber=to, Message=message.body)
        except ClientError as error:
            raise _client_error(error) from None
        except NoCredentialsError:
            raise ChannelUnavailable("sns-sms: no AWS credentials found") from None
        except BotoCoreError as error:  # connection refused, timeouts, unreadable answers
            raise TransientSendError(f"sns-sms: {type(error).__name__}: {error}") from None
        logger.info("sns-sms: published %s", answer["MessageId"])
        return Receipt(provider_id=answer["MessageId"])


def _client(region, endpoint_url, access_key_id, secret_access_key, session_token, timeout):
    session = boto3.session.Session(
        aws_access_key_id=access_key_id or None,
        aws_secret_access_key=secret_access_key or None,
        aws_session_token=session_token or None,
        region_name=region or None,
    )
    config = Config(
        connect_timeout=timeout, read_timeout=timeout,
        # One attempt: retrying (with backoff) is the engine's decision, not botocore's.
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    # No region anywhere would make client() fail; SNS SMS is most often us-east-1.
    region_name = None if session.region_name else "us-east-1"
    return session.client("sns", endpoint_url=endpoint_url or None, region_name=region_name, config=config)


def _client_error(error: ClientError) -> Exception:
    """Throttling and 5xx: later; anything else the service refused (InvalidParameter, …): never."""
    details = error.response.get("Error", {})
    code = details.get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    transient = code in _TRANSIENT_CODES or status >= 500 or status == 429
    kind = TransientSendError if transient else PermanentSendError
    return kind(f"sns-sms: {code or 'error'} (HTTP {status}): {details.get('Message', '')}")
