"""Talking to the SMTP server: its address from `COMMENTS_SMTP_URL`, one send, and what a failure was.

`smtps://` speaks TLS from the first byte (port 465 by default); `smtp://` (port 587 by default) must upgrade with
STARTTLS, except to a loopback address (a relay on the same host: nothing on the wire to protect), where
STARTTLS is used if offered. The server is the operator's choice, not a reader's: it is not checked against the
egress rules of webhooks. A failure is recorded as a class, never the server's text: `timeout`, `connection`,
`tls`, `auth`, `refused_<code>` (the recipient refused), `smtp_<code>` (another command refused).
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Final
from urllib.parse import unquote, urlsplit

import aiosmtplib

#: One send takes at most this many `timeout`s in all (the lease of a mail job outlasts it).
SEND_TIMEOUTS: Final = 3


@dataclass(frozen=True, slots=True)
class Server:
    host: str
    port: int
    username: str | None
    password: str | None
    #: TLS from the first byte (smtps).
    implicit_tls: bool
    #: STARTTLS: True required, None if offered.
    start_tls: bool | None
    timeout: float

    @classmethod
    def from_url(cls, url: str, timeout: float) -> Server:
        parts = urlsplit(url)
        implicit = parts.scheme == "smtps"
        host = parts.hostname or ""
        return cls(host=host, port=parts.port or (465 if implicit else 587),
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password is not None else None,
                   implicit_tls=implicit, start_tls=None if implicit or _loopback(host) else True,
                   timeout=timeout)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def envelope_sender(from_header: str) -> str:
    """The bare address of a From header ("Báo <a@b.vn>" -> a@b.vn)."""
    return parseaddr(from_header)[1]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A failed send: its class, the server's code if it gave one, and whether the recipient's server refused
    the address for good (a 5xx to RCPT)."""

    error: str
    code: int | None = None
    permanent: bool = False


async def send(server: Server, sender: str, recipient: str, message: bytes) -> Refusal | None:
    """Send one message to one recipient; None when the server accepted it."""
    try:
        # aiosmtplib's timeout is per command: a server that answers each one just in time is cut off here.
        async with asyncio.timeout(server.timeout * SEND_TIMEOUTS):
            await aiosmtplib.send(message, sender=sender, recipients=[recipient], hostname=server.host,
                                  port=server.port, username=server.username, password=server.password,
                                  use_tls=server.implicit_tls, start_tls=server.start_tls, timeout=server.timeout)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        code = min((r.code for r in exc.recipients), default=550)
        return Refusal(f"refused_{code}", code, permanent=code >= 500)
    except aiosmtplib.SMTPRecipientRefused as exc:
        return Refusal(f"refused_{exc.code}", exc.code, permanent=exc.code >= 500)
    except aiosmtplib.SMTPAuthenticationError as exc:
        return Refusal("auth", exc.code)
    except aiosmtplib.SMTPTimeoutError:
        return Refusal("timeout")
    except aiosmtplib.SMTPResponseException as exc:
        return Refusal(f"smtp_{exc.code}", exc.code)
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
        return Refusal("tls" if isinstance(exc.__cause__, ssl.SSLError) else "connection")
    except TimeoutError:
        return Refusal("timeout")
    except ssl.SSLError:
        return Refusal("tls")
    except (aiosmtplib.SMTPException, OSError):
        return Refusal("connection")
    return None
