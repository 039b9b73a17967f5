"""Every object shared through the application, as a typed `web.AppKey` (no string keys, no globals)."""

from __future__ import annotations

from concurrent.futures import Executor
from typing import TYPE_CHECKING

from aiohttp import web

from service.accounts import Accounts
from service.captcha import Captchas
from service.connections import RedisClient
from service.feed import Feed
from service.live import Live
from service.metrics import Metrics
from service.moderation import Moderation
from service.privacy import Privacy
from service.publication import Publication
from service.reports import Reports
from service.retention import Retention
from service.scripts import Scripts
from service.settings import Settings
from service.submissions import Submissions
from service.takedowns import Takedowns
from service.tokens import Tokens

if TYPE_CHECKING:
    from service.mail.mailer import Mail
    from service.webhooks import Webhooks

SETTINGS = web.AppKey("settings", Settings)
REDIS: web.AppKey[RedisClient] = web.AppKey("redis")
SCRIPTS = web.AppKey("scripts", Scripts)
RENDER_POOL = web.AppKey("render_pool", Executor)
CAPTCHAS = web.AppKey("captchas", Captchas)
SUBMISSIONS = web.AppKey("submissions", Submissions)
TOKENS = web.AppKey("tokens", Tokens)
ACCOUNTS = web.AppKey("accounts", Accounts)
MODERATION = web.AppKey("moderation", Moderation)
LIVE = web.AppKey("live", Live)
PUBLICATION = web.AppKey("publication", Publication)
FEED = web.AppKey("feed", Feed)
WEBHOOKS: web.AppKey[Webhooks] = web.AppKey("webhooks")
MAIL: web.AppKey[Mail] = web.AppKey("mail")
METRICS = web.AppKey("metrics", Metrics)
PRIVACY = web.AppKey("privacy", Privacy)
REPORTS = web.AppKey("reports", Reports)
RETENTION = web.AppKey("retention", Retention)
TAKEDOWNS = web.AppKey("takedowns", Takedowns)
