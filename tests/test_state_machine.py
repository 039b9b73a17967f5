"""A Hypothesis state machine over the moderation life cycle, against a real redis-server and the real HTTP
API:
submit, claim, decide (approve / reject / spam), retract, lease expiry, and restarts of the service and of
Redis (from its AOF). A simple model says what must be true after every step:

- no comment is lost: each acknowledged comment is in Redis in the state the model expects;
- none is decided twice: its history has at most one decision out of `pending`;
- the moderation queue holds exactly the pending comments;
- the public list of every article and the approvals feed agree with the decisions.

Each run owns an event loop in this thread; the app is served on loopback by aiohttp's TestServer.
FUZZ_EXAMPLES (default 30) sets the number of runs.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, ClassVar, Final

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis import Redis as SyncRedis
from support import ADMIN, RedisServer, bearer, comment_form, make_app, service_settings

from service import keys
from service.settings import Settings

RUNS: Final = int(os.environ.get("FUZZ_EXAMPLES", "30"))
ARTICLES: Final = ("sm-a", "sm-b", "sm-c")
MODERATORS: Final = ("lan", "minh")
TARGET: Final = {"approve": "approved", "reject": "rejected", "spam": "spam"}
totals: dict[str, int] = {"runs": 0, "steps": 0, "submitted": 0, "decided": 0, "retracted": 0,
                          "expired": 0, "service_restarts": 0, "redis_restarts": 0, "checks": 0}


def _settings(redis_url: str, data_dir: Path) -> Settings:
    return service_settings(redis_url, data_dir, captcha_pool_size=0, public_cache_seconds=0)


class ModerationMachine(RuleBasedStateMachine):
    #: Set by the test before Hypothesis builds instances.
    server: ClassVar[RedisServer]
    data_dir: ClassVar[Path]

    def __init__(self) -> None:
        super().__init__()
        SyncRedis.from_url(self.server.url).flushdb()
        self.loop = asyncio.new_event_loop()
        self.client: TestClient[Any, Any] | None = None
        self.tokens: dict[str, dict[str, str]] = {}
        #: comment id -> expected state; article of each; live leases: id -> moderator
        self.state: dict[str, str] = {}
        self.article: dict[str, str] = {}
        self.leases: dict[str, str] = {}
        self.restarts = 0
        self._start_service()
        totals["runs"] += 1

    # -- plumbing ------------------------------------------------------------------------------------

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def _start_service(self) -> None:
        async def start() -> TestClient[Any, Any]:
            client = TestClient(TestServer(make_app(_settings(self.server.url, self.data_dir))))
            await client.start_server()
            return client
        self.client = self.run(start())

    def _stop_service(self) -> None:
        if self.client is not None:
            self.run(self.client.close())
            self.client = None

    def teardown(self) -> None:
        self._stop_service()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def call(self, method: str, path: str, headers: dict[str, str] | None = None,
             json: Any = None) -> tuple[int, Any]:
        async def go() -> tuple[int, Any]:
            assert self.client is not None
            response = await self.client.request(method, path, headers=headers, json=json)
            body = await response.json() if response.content_type.endswith("json") else None
            return response.status, body
        status, body = self.run(go())
        assert status < 500, (method, path, status, body)
        totals["steps"] += 1
        return status, body

    @initialize()
    def moderators(self) -> None:
        for name in MODERATORS:
            status, body = self.call("POST", "/v1/tokens", ADMIN, {"role": "moderator", "name": name})
            assert status == 201
            self.tokens[name] = bearer(body["token"])

    # -- rules ------------------------------------------------------------------------------------------

    @rule(article=st.sampled_from(ARTICLES),
          text=st.text(st.characters(categories=["L", "N", "P"]), max_size=30))
    def submit(self, article: str, text: str) -> None:
        status, captcha = self.call("POST", "/v1/captchas")
        assert status == 201
        form = comment_form(captcha["id"], name="Độc giả", email="reader@example.com", body=f"Nội dung {text}")
        status, body = self.call("POST", f"/v1/articles/{article}/comments", json=form)
        assert status == 202, body
        self.state[body["id"]] = "pending"
        self.article[body["id"]] = article
        totals["submitted"] += 1

    @precondition(lambda self: any(s == "pending" for s in self.state.values()))
    @rule(moderator=st.sampled_from(MODERATORS), limit=st.integers(1, 5))
    def claim(self, moderator: str, limit: int) -> None:
        status, body = self.call("POST", "/v1/moderation/claims", self.tokens[moderator],
                                 {"limit": limit, "lease_seconds": 300})
        assert status == 200, body
        claimed = [c["id"] for c in body["comments"]]
        claimable = [i for i, s in self.state.items() if s == "pending" and i not in self.leases]
        assert len(claimed) == min(limit, len(claimable)), (claimed, claimable)
        for comment_id in claimed:
            assert comment_id in claimable, "a claim took a decided or leased comment"
            self.leases[comment_id] = moderator

    @precondition(lambda self: bool(self.state))
    @rule(data=st.data(), moderator=st.sampled_from(MODERATORS), action=st.sampled_from(sorted(TARGET)))
    def decide(self, data: st.DataObject, moderator: str, action: str) -> None:
        comment_id = data.draw(st.sampled_from(sorted(self.state)))
        status, body = self.call("POST", f"/v1/moderation/comments/{comment_id}/decision",
                                 self.tokens[moderator], {"action": action})
        holder = self.leases.get(comment_id)
        if self.state[comment_id] != "pending":
            assert (status, body["code"]) == (409, "already_decided")
        elif holder is not None and holder != moderator:
            assert (status, body["code"]) == (409, "leased_to_other")
        else:
            assert status == 200, body
            assert body["state"] == TARGET[action]
            self.state[comment_id] = TARGET[action]
            self.leases.pop(comment_id, None)
            totals["decided"] += 1

    @precondition(lambda self: bool(self.state))
    @rule(data=st.data(), moderator=st.sampled_from(MODERATORS))
    def retract(self, data: st.DataObject, moderator: str) -> None:
        comment_id = data.draw(st.sampled_from(sorted(self.state)))
        status, body = self.call("POST", f"/v1/moderation/comments/{comment_id}/retract",
                                 self.tokens[moderator], {"reason": "đính chính"})
        if self.state[comment_id] == "approved":
            assert status == 200, body
            assert body["state"] == "retracted"
            self.state[comment_id] = "retracted"
            totals["retracted"] += 1
        else:
            assert (status, body["code"]) == (409, "not_approved")

    @precondition(lambda self: bool(self.leases))
    @rule()
    def leases_run_out(self) -> None:
        """Moderators who claimed and vanished: their leases end (scores rewritten into the past). Time passing
        so, the partition's claim hint (claim.lua) last swept the leases before they ended: its `swept` is
        moved back before them too, as if the claims since had run earlier."""
        redis = SyncRedis.from_url(self.server.url)
        past = int(time.time() * 1000) - 1000
        for comment_id in self.leases:
            partition = keys.partition_of_comment(comment_id)
            assert redis.zadd(keys.leases(partition), {comment_id: past}, xx=True) == 0  # updated, not added
            assert redis.zscore(keys.leases(partition), comment_id) == past
            swept = redis.hget(keys.claim_hint(partition), "swept")
            if swept is not None and int(swept) >= past:
                redis.hset(keys.claim_hint(partition), "swept", past - 1)
        totals["expired"] += len(self.leases)
        self.leases.clear()

    # Restarts are costly and uninteresting on an empty store: a few per run, once there is something to lose.
    @precondition(lambda self: len(self.state) >= 2 and self.restarts < 3)
    @rule()
    def restart_service(self) -> None:
        self._stop_service()
        self._start_service()
        self.restarts += 1
        totals["service_restarts"] += 1

    @precondition(lambda self: len(self.state) >= 3 and self.restarts < 3)
    @rule()
    def restart_redis(self) -> None:
        """SIGTERM (AOF flushed) and start again from the AOF; leases' wall-clock expiry is kept."""
        self.server.stop()
        self.server.start()
        self.restarts += 1
        totals["redis_restarts"] += 1

    # -- what must always hold ----------------------------------------------------------------------------

    @invariant()
    def nothing_lost_nothing_decided_twice(self) -> None:
        for comment_id, expected in self.state.items():
            status, body = self.call("GET", f"/v1/moderation/comments/{comment_id}", ADMIN)
            assert status == 200, f"acknowledged comment {comment_id} is lost"
            assert body["state"] == expected
            decisions = [h for h in body["history"] if h["from_state"] == "pending"]
            assert len(decisions) == (0 if expected == "pending" else 1)
        totals["checks"] += 1

    @invariant()
    def queue_holds_the_pending(self) -> None:
        status, body = self.call("GET", "/v1/moderation/queue?limit=200", ADMIN)
        assert status == 200
        assert {c["id"] for c in body["comments"]} == {i for i, s in self.state.items() if s == "pending"}

    @invariant()
    def public_lists_and_feed_agree_with_decisions(self) -> None:
        approved = {i for i, s in self.state.items() if s == "approved"}
        for article in ARTICLES:
            status, body = self.call("GET", f"/v1/articles/{article}/comments?limit=100")
            assert status == 200
            assert {c["id"] for c in body["comments"]} == {i for i in approved if self.article[i] == article}
            assert body["total"] == len(body["comments"])
        published: set[str] = set()
        status, page = self.call("GET", "/v1/feed?limit=1000", ADMIN)
        assert status == 200
        for event in page["events"]:
            comment_id = event["comment"]["id"]
            if event["type"] == "comment.approved":
                assert comment_id not in published, "approved twice in the feed"
                published.add(comment_id)
            else:
                assert event["type"] == "comment.retracted"
                published.remove(comment_id)
        assert published == approved



@pytest.mark.slow
def test_moderation_life_cycle(redis_server: RedisServer, tmp_path: Path) -> None:
    ModerationMachine.server = redis_server
    ModerationMachine.data_dir = tmp_path
    run_state_machine_as_test(ModerationMachine, settings=hypothesis_settings(
        max_examples=RUNS, stateful_step_count=40, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow], phases=[Phase.generate]))
    print(f"\nstate machine: {totals}")
    assert totals["runs"] >= RUNS and totals["decided"] > 0 and totals["checks"] > 0
