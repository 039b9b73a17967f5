"""The Redis key schema: every key the service writes is built here and nowhere else.

Comments are spread over `PARTITIONS` partitions by article, so a Redis Cluster shards them; everything one
Lua script touches carries the partition's hash tag (`{pXX}`) and so lives in one slot. Comment ids start
with their partition, so any key of a comment can be built from its id alone.

The keys a submission's gate reads and counts (captcha markers, rate limits, repeats, reputation, idempotency)
share the tag `{g}`: small and short-lived, they fit one slot, so the gate is one script on a Cluster too. On one
server (or Sentinel) the gate and the store run as one script, whatever the tags: one round trip per comment.

Keys built from client text are unambiguous: the client's text comes last, after a fixed part that names the
kind of key and ends in `:` (article keys: `a:`, `ao:`, `aq:`, built by `_article_key`; rate limits: scope and
window first, the subject last). Article ids may contain `:` (URN-like ids) but no `{`, so they never shift the
hash tag; a key then reads back as exactly one (kind, id) pair, and no id, however it is chosen, names the key
of another id or of another kind (`tests/test_keys.py` checks it by parsing every key back). The partition keys
that take no client text (`pending`, `feed`, `stats:<hour>`...) share no prefix with the article kinds.

Data from before this scheme (`a:<article>:order` and `a:<article>:public`; the article hash `a:<article>` kept
its name) is not moved: such a key cannot be told, by its name, from the hash of an article called `X:order`.
`comments-service doctor --repair` puts approved records missing from their article's order set back from the
records; the old keys are then left behind, unread. The article's pending index (`aq:`) is newer
than the queue it indexes: on data from before it, filters and claims kept to an article miss the comments
queued earlier until `doctor --repair` adds them (`pending_not_in_article_index`).

Copies of the public view from before it was made from the record (issue 19) are not read: the article's public
hash `cm:{pXX}:ap:<article>` (`legacy_article_public`; the code `ap` is retired, never a new kind's), a record's
`pub` field, and the `comment` field of feed events (events now carry the id, rendered at read time). Since they
hold the text, `comments-service doctor` reports the hashes and fields (`legacy_public_hash`,
`legacy_public_field`) and `--repair` deletes them; an erasure deletes its comment's (`privacy.py`), and old feed
events age out with the feed's retention. A decided record's history list of one entry from before is read as it
is (the list, when present, is the history).

The queue is `pending` (and the article's `aq:`) with the leases: a pending comment is claimable when it has no
live lease (none in `leases`, or one that ran out; claim.lua takes those over). Two keys of before that are no
longer written or read: the partition's claimable queue `cm:{pXX}:ready` (`legacy_ready`) and its pending id ->
article hash `cm:{pXX}:articles` (`legacy_pending_articles`: the record's `a` says it). `comments-service doctor`
reports them (`legacy_queue_key`) and `--repair` deletes them; until then they are left alone, unread. A
partition-wide claim starts at the partition's claim hint `cm:{pXX}:claim` (`claim_hint`: two fields, so a
pending comment still costs no entry of its own): `from`, a score below which every pending entry has a live
lease, and `swept`, the ms up to which ran-out leases were looked at (claim.lua). A release, a new comment and an
import lower `from`; `doctor --repair` deletes a hint that is ahead (`claim_hint_ahead`): no hint is always
right (the claim then starts at the queue's head). A record's
fingerprint `f` is 32 hex digits since then; a record of before holds 64, and is recognised by either
(`submissions.same_request`).

| key                                  | type   | TTL                  | owner / purpose |
|--------------------------------------|--------|----------------------|-----------------|
| cm:{g}:cap:<captcha nonce>           | string | rest of captcha life | captcha: tried once (ids are signed tokens) |
| cm:{g}:capaudio:<lang>:<nonce>       | string | rest of captcha life | captcha: its audio (WAV), rendered once |
| cm:{g}:rl:<scope>:<window>:<subject> | string | window               | ratelimit: fixed-window counter |
| cm:{g}:seen:<body digest>            | string | 1 day                | risk: how often this exact text was sent |
| cm:{g}:rep:ip:<ip hash> / :email:<h> | string | 90 days              | risk: spam decisions against this sender |
| cm:{g}:idem:<key digest>             | string | idempotency TTL      | submissions: the request fingerprint |
| cm:{pXX}:c:<id>                      | hash   | none                 | the comment record (see `submissions`) |
| cm:{pXX}:h:<id>                      | list   | none                 | history of state changes (JSON), from the 2nd |
| cm:{pXX}:pending                     | zset   | none                 | pending ids -> submitted ms (the queue) |
| cm:{pXX}:leases                      | zset   | none                 | leased ids -> lease expiry ms |
| cm:{pXX}:holders                     | hash   | none                 | leased id -> moderator |
| cm:{pXX}:claim                       | hash   | none                 | claim hint: from (score), swept (ms) |
| cm:{pXX}:a:<article>                 | hash   | none                 | article: seq, ver, count, closed |
| cm:{pXX}:ao:<article>                | zset   | none                 | approved ids -> approval sequence |
| cm:{pXX}:aq:<article>                | zset   | none                 | pending ids -> submitted ms (article filters) |
| cm:{pXX}:feed                        | stream | trimmed by retention | approved/retracted/erased/anonymised: ids |
| cm:{pXX}:feed:trimmed                | string | none                 | id of the newest event trimmed away |
| cm:{pXX}:outbox                      | stream | trimmed when old     | events for outbox consumers (`outbox_group`) |
| cm:{pXX}:outbox:dead:<group>         | stream | capped (10,000)      | entries a consumer group gave up on |
| cm:{pXX}:stats:<hour>                | hash   | 8 days               | "<action>:<moderator>" -> decisions that hour |
| cm:{pXX}:lat:<hour>                  | hash   | 8 days               | bucket (max s waited) -> decisions |
| cm:{pXX}:st:<state>                  | zset   | none                 | ids in the state -> decided ms |
| cm:{pXX}:n                           | string | none                 | search: the last comment number n (INCR) |
| cm:{pXX}:n:done                      | string | none                 | search: terms written up to this n (indexer) |
| cm:{pXX}:n:<chunk>                   | string | none                 | search: n -> id and submitted ms (32 B slots) |
| cm:{pXX}:w:<folded word>             | string | none                 | search: n's of a word (3 B each, or a bitmap) |
| cm:{pXX}:e:<email digest>            | string | none                 | search: n's of a sender (as `w:`) |
| cm:{pXX}:i:<ip hash>                 | string | none                 | search: n's of an address (as `w:`) |
| cm:{pXX}:b:<bucket>                  | hash   | none                 | search: rare terms' n's: term -> 3 B n's |
| cm:{pXX}:rp:<comment id>             | hash   | none                 | reports: client hash -> report (JSON) |
| cm:{pXX}:reported                    | zset   | none                 | reports: open ones: id -> first report ms |
| cm:{pXX}:rc                          | hash   | none                 | reports: id -> open reports |
| cm:{pXX}:re:<email digest>           | zset   | none                 | reports: reporter's (email) ids -> ms |
| cm:{pXX}:rlat:<hour>                 | hash   | 8 days               | reports: bucket (s waited) -> resolutions |
| cm:{pXX}:ret:ip                      | string | none                 | retention: IP hashes dropped up to (ms) |
| cm:{auth}:token:<sha256>             | hash   | token expiry         | tokens: role, name, id, created, expires |
| cm:{auth}:tokens                     | hash   | none                 | token id -> sha256 (listing, revocation) |
| cm:{acct}:user:<folded name>         | hash   | none                 | accounts: name, role, password hash, TOTP |
| cm:{acct}:users                      | set    | none                 | accounts: every folded name (listing) |
| cm:{acct}:invite:<sha256>            | hash   | 72 hours             | accounts: an invitation's name and role |
| cm:{acct}:reset:<sha256>             | hash   | 1 or 24 hours        | accounts: a password reset's person |
| cm:{acct}:session:<sha256>           | hash   | idle timeout         | sessions: person, role, CSRF token, expiries |
| cm:{acct}:sessions:<folded name>     | zset   | session lifetime     | sessions: a person's sessions -> expiry ms |
| cm:{hooks}:webhooks                  | hash   | none                 | webhook id -> JSON registration |
| cm:{hooks}:delivery:<id>             | hash   | 7 days once done     | a delivery to one webhook (a `jobs` job) |
| cm:{hooks}:due                       | zset   | none                 | delivery id -> next attempt ms |
| cm:{hooks}:recent                    | zset   | none                 | delivery id -> last change ms (admin listing) |
| cm:{mail}:owners                     | hash   | none                 | mail: the job queue's one owner ("mail") |
| cm:{mail}:job:<id>                   | hash   | 1 day once done      | mail: one email, one recipient (a `jobs` job) |
| cm:{mail}:due                        | zset   | none                 | mail: job id -> next attempt ms |
| cm:{mail}:recent                     | zset   | none                 | mail: job id -> last change ms |
| cm:{mail}:suppressed                 | hash   | none                 | mail: email digest -> why none goes to it |
| cm:{mail}:bounces:<email digest>     | string | 30 days              | mail: permanent refusals (5xx) of an address |
| cm:{mail}:link:<nonce>               | string | rest of link's life  | mail: a moderator's one-click link, used |
| cm:{mail}:overdue                    | hash   | none                 | mail: overdue reports told: id -> first ms |
| cm:{privacy}:log                     | stream | capped (100,000)     | privacy: erasures, retention runs (ids only) |
| cm:{privacy}:takedowns               | stream | none                 | takedowns: the register of lawful requests |
| cm:{privacy}:retention:lock          | string | lock TTL             | retention: the one worker running it now |
| cm:{search}:indexer                  | string | lease TTL (3 s)      | search: the indexer's lease (`indexer`) |
| cm:{privacy}:req:<sha256>            | hash   | 24 hours             | privacy: a self-service request |
| cm:{privacy}:mail                    | stream | until queued (mail)  | privacy: `data_request` mail items |

The comment record `cm:{pXX}:c:<id>` is a hash of short fields (every decision reads them: decide.lua's one
HMGET), written only by the scripts named. `d` holds the record as JSON: name, email, title, body, parent_id,
ip_hash, email_hash, avatar, created_at, lang (the reader's language: vi or en) and notify (true: email the author
the decision; absent in older records: false), and last a "risk" list (the gate's signals are appended to it).

Memory: a record stays in Redis's compact hash encoding (listpack) while each value is at most
`hash-max-listpack-value` bytes (`service.embedded.HASH_MAX_LISTPACK_VALUE`, 2048; docs/operations.md). Keep new
fields short, and the text in one field, `d`: each copy of it costs its length again (docs/benchmarks.md,
"Memory"). So the public view is not stored: `records.public_view` makes it from `d` and `ap` (the article's
pages, the feed, the export), and the article's order set `ao:` lists the approved ids. A decision is described
by the record's fields (`s`, `v`, `did`, `dt`, `db`, `dr`): the history list `h:` is written from the second
change of state on (decide.lua then writes the first entry, made from the fields, before the new one), and its
readers make the one entry from the fields while the list is absent (`records.history_entries`).

| field | meaning | written by |
|-------|---------|------------|
| d     | the record as JSON (above); never shown as it is to the public | store.lua (`submissions` makes it) |
| a     | article id | store.lua |
| t     | submitted ms (its score in the queues and indexes) | store.lua |
| s     | state: pending, approved, rejected, spam, retracted (`moderation.State`) | store.lua, decide.lua |
| v     | version: 1 when stored, one more with every decision (optimistic concurrency) | store.lua, decide.lua |
| f     | request fingerprint, 32 hex (64 in records of before): an idempotent retry is known by it | store.lua |
| did   | id of the latest decision (a retried decision is recognised by it) | decide.lua |
| dt    | ms of the latest decision (the undo window; the history's first entry); removed by an undo | decide.lua |
| db    | moderator of the latest decision (who may undo it); removed by an undo | decide.lua |
| dr    | the reason of a first decision while it is the only change (no history list); absent if empty | decide.lua |
| ap    | approved ms (the public view's `approved_at`); kept after a retraction; removed by an undo | decide.lua |
| er    | the erasure mode applied (delete, anonymise, strip_ip) | erase.lua |
| rs    | "1": the author confirmed they want an email for each approved reply (double opt-in) | `mail` |
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Final

PREFIX: Final = "cm"
#: Fixed for the life of a deployment: changing it moves articles between partitions.
PARTITIONS: Final = 16


def partition_of_article(article_id: str) -> int:
    return zlib.crc32(article_id.encode()) % PARTITIONS


def partition_of_comment(comment_id: str) -> int:
    """Comment ids begin with two hex digits naming their partition (see `submissions.new_comment_id`)."""
    return int(comment_id[:2], 16) % PARTITIONS


def _tag(partition: int) -> str:
    return f"{PREFIX}:{{p{partition:02x}}}"


# -- the submission gate: short-lived, one slot -----------------------------------------------------------

GATE: Final = f"{PREFIX}:{{g}}"


def captcha_used(nonce: str) -> str:
    return f"{GATE}:cap:{nonce}"


def captcha_audio(nonce: str, lang: str) -> str:
    """The captcha's rendered audio (`lang` is "vi" or "en"; the nonce, hex, last)."""
    return f"{GATE}:capaudio:{lang}:{nonce}"


def rate_limit(scope: str, subject: str, window: int) -> str:
    # The subject last: it may be client text (an article id, which may contain `:`).
    return f"{GATE}:rl:{scope}:{window}:{subject}"


def seen_text(digest: str) -> str:
    return f"{GATE}:seen:{digest}"


def reputation(kind: str, subject: str) -> str:
    return f"{GATE}:rep:{kind}:{subject}"


def idempotency(digest: str) -> str:
    return f"{GATE}:idem:{digest}"


# -- one partition -----------------------------------------------------------------------------------------

def comment(comment_id: str) -> str:
    return f"{_tag(partition_of_comment(comment_id))}:c:{comment_id}"


def history(comment_id: str) -> str:
    return f"{_tag(partition_of_comment(comment_id))}:h:{comment_id}"


def pending(partition: int) -> str:
    return f"{_tag(partition)}:pending"


def legacy_ready(partition: int) -> str:
    """The claimable queue of before (claimable ids -> submitted ms): never written or read, only found and
    deleted (`doctor`): claimable is now pending without a live lease."""
    return f"{_tag(partition)}:ready"


def leases(partition: int) -> str:
    return f"{_tag(partition)}:leases"


def holders(partition: int) -> str:
    return f"{_tag(partition)}:holders"


def claim_hint(partition: int) -> str:
    """The partition's claim hint (claim.lua): `from`, a score below which every pending entry has a live lease,
    and `swept`, the ms up to which ran-out leases were looked at. Absent: claims start at the queue's head."""
    return f"{_tag(partition)}:claim"


def legacy_pending_articles(partition: int) -> str:
    """The pending id -> article hash of before: never written or read (the record's `a` holds the article),
    only found and deleted (`doctor`)."""
    return f"{_tag(partition)}:articles"


#: The kinds of article key: the code that follows the partition's tag, then the article id, last. A new kind
#: of article key gets its own code here (no `:` in it, and none of the partition's fixed names, e.g. `feed`).
ARTICLE_KINDS: Final = {"a": "article", "ao": "article_order", "aq": "article_pending"}
#: Kinds no longer written, still recognised (`comments-service doctor` deletes them): no new kind takes a code of
#: these. `ap`: the article's public hash of before issue 19.
RETIRED_ARTICLE_KINDS: Final = {"ap": "legacy_article_public"}


def _article_key(kind: str, article_id: str) -> str:
    """Every key of an article: a fixed part naming the kind, then the id, so that no id names another's key."""
    return f"{_tag(partition_of_article(article_id))}:{kind}:{article_id}"


def article(article_id: str) -> str:
    return _article_key("a", article_id)


def article_order(article_id: str) -> str:
    return _article_key("ao", article_id)


def legacy_article_public(article_id: str) -> str:
    """The article's public hash of deployments before issue 19 (approved id -> public JSON): never written, only
    found and deleted (`doctor`, an erasure)."""
    return _article_key("ap", article_id)


def article_pending(article_id: str) -> str:
    """The article's own queue, so that filtering by article costs the article's pending, not the partition's."""
    return _article_key("aq", article_id)


def feed(partition: int) -> str:
    return f"{_tag(partition)}:feed"


def feed_trimmed(partition: int) -> str:
    return f"{_tag(partition)}:feed:trimmed"


def outbox(partition: int) -> str:
    return f"{_tag(partition)}:outbox"


def outbox_group(consumer: str) -> str:
    """The consumer group in which an outbox consumer (`service.outbox`) reads every partition's outbox: the
    consumer's name, fixed in code (deployed data holds the group `webhooks`)."""
    return consumer


def outbox_dead(partition: int, group: str) -> str:
    return f"{_tag(partition)}:outbox:dead:{group}"


def stats(partition: int, hour: int) -> str:
    return f"{_tag(partition)}:stats:{hour}"


def decision_latency(partition: int, hour: int) -> str:
    """The hour's decisions counted by how long each comment waited (buckets: decide.lua)."""
    return f"{_tag(partition)}:lat:{hour}"


#: The decided states, each with its own list (`state_index`); pending comments are listed by `pending`.
DECIDED_STATES: Final = ("approved", "rejected", "spam", "retracted")


def state_index(partition: int, state: str) -> str:
    """The partition's comments in a decided state, by decision time (`state` is one of `DECIDED_STATES`)."""
    return f"{_tag(partition)}:st:{state}"


# The moderators' search index (`service.search`, lua/lib/terms.lua): a comment number n per partition, the
# n -> comment map, and per term (a word, a sender, an address) the n's of the comments that have it. The store
# gives a comment its n and slot; the indexer (`service.indexer`) writes its terms later, in batches, and moves the
# partition's watermark (`search_done`).

#: Comments one string of the n -> comment map holds (`search_ids`), and the bytes each takes there: the id
#: (26), then the submitted ms (6, big-endian); zero bytes where no comment is (purged, or never stored).
SEARCH_CHUNK: Final = 65536
SEARCH_SLOT: Final = 32
#: Hashes per partition that hold rare terms' n's (`search_bucket`). Fixed for the life of a deployment, like
#: `PARTITIONS`: a change moves terms to other buckets (`comments-service doctor --repair` rebuilds them).
SEARCH_BUCKETS: Final = 256
#: The kinds of search term: the code after the partition's tag, then the term, last.
SEARCH_TERM_KINDS: Final = {"w": "word", "e": "email", "i": "address"}


def search_seq(partition: int) -> str:
    """The partition's last comment number n (INCR by the store and import.lua; the record's `n`)."""
    return f"{_tag(partition)}:n"


def search_done(partition: int) -> str:
    """The partition's indexed watermark: every n at or below it has its terms written (or had no record left to
    index); written by index_batch.lua only. Readers take the n's above it from the map and the records. erase.lua
    makes this name from the `search_seq` key (its name, then `:done`): keep the two in step."""
    return f"{search_seq(partition)}:done"


def search_ids(partition: int, chunk: int) -> str:
    """Comments (n - 1) // SEARCH_CHUNK == chunk of the n -> comment map. The scripts make this name from the
    `search_seq` key (its name, then `:<chunk>`): keep the two in step."""
    return f"{search_seq(partition)}:{chunk}"


def search_term(partition: int, kind: str, value: str) -> str:
    """A term's own string (its n's, or its bitmap once dense): `kind` one of `SEARCH_TERM_KINDS`."""
    return f"{_tag(partition)}:{kind}:{value}"


def by_email(partition: int, email_digest: str) -> str:
    """Comments by a sender: by the keyed digest of the email (`clients.email_hash`), never the address."""
    return search_term(partition, "e", email_digest)


def by_ip(partition: int, ip_hash: str) -> str:
    return search_term(partition, "i", ip_hash)


def word_index(partition: int, word: str) -> str:
    """Comments containing a folded word (client text: last, after `w:`; `\\w` has no `:` or `{`)."""
    return search_term(partition, "w", word)


def search_field(term_key: str) -> str:
    """A term's field in its bucket hash: its key without the partition's tag (`w:<word>`, `e:<digest>`...)."""
    return term_key[term_key.index("}:") + 2:]


def search_bucket(term_key: str) -> str:
    """The hash that holds the term's n's while they are few (lua/lib/terms.lua)."""
    tag = term_key[:term_key.index("}:") + 1]
    return f"{tag}:b:{zlib.crc32(search_field(term_key).encode()) % SEARCH_BUCKETS:02x}"


def search_keys(partition: int, terms: Sequence[str]) -> list[str]:
    """A script's search block (last in its KEYS): the partition's `search_seq`, then each term's key and its
    bucket."""
    return [search_seq(partition), *(key for term in dict.fromkeys(terms) for key in (term, search_bucket(term)))]


def comment_terms(partition: int, email_digest: str, ip_hash: str, words: Sequence[str]) -> list[str]:
    """The terms a comment is found by: its sender's email digest and address hash (when it has them), its
    indexed words."""
    return [*([by_email(partition, email_digest)] if email_digest else []),
            *([by_ip(partition, ip_hash)] if ip_hash else []), *(word_index(partition, w) for w in words)]


def reports(comment_id: str) -> str:
    """Readers' reports of one comment, one field per client (its keyed address hash): counted once each."""
    return f"{_tag(partition_of_comment(comment_id))}:rp:{comment_id}"


def reported(partition: int) -> str:
    return f"{_tag(partition)}:reported"


def report_counts(partition: int) -> str:
    """Open reports per comment (since its reports were last resolved): the reported queue's first order."""
    return f"{_tag(partition)}:rc"


def reports_by_email(partition: int, email_digest: str) -> str:
    """Comments reported by a reader who gave an email (its keyed digest), for that reader's export."""
    return f"{_tag(partition)}:re:{email_digest}"


def report_latency(partition: int, hour: int) -> str:
    """The hour's report resolutions counted by how long the first report waited (buckets as `decision_latency`)."""
    return f"{_tag(partition)}:rlat:{hour}"


def retention_ip_mark(partition: int) -> str:
    return f"{_tag(partition)}:ret:ip"


# -- a reader's data: the privacy log, takedowns, retention, self-service requests (one slot: `{privacy}`) ----

PRIVACY: Final = f"{PREFIX}:{{privacy}}"


def privacy_log() -> str:
    return f"{PRIVACY}:log"


def takedowns() -> str:
    return f"{PRIVACY}:takedowns"


def retention_lock() -> str:
    return f"{PRIVACY}:retention:lock"


def search_indexer_lease() -> str:
    """The background search indexer's lease (`service.indexer`): the token of the one worker indexing now (SET
    NX with a TTL, renewed while it runs), so the workers' indexers do not read and plan the same batches; the
    index stays right without it (index_batch.lua refuses a batch another indexer wrote first). A key of its own
    slot: it names no partition."""
    return f"{PREFIX}:{{search}}:indexer"


def data_request(digest: str) -> str:
    """A self-service request by its link's SHA-256 (hex): the link's token itself is never stored."""
    return f"{PRIVACY}:req:{digest}"


def data_request_mail() -> str:
    return f"{PRIVACY}:mail"


# -- tokens and webhooks: small, global, one slot each ------------------------------------------------------

def token(digest: str) -> str:
    return f"{PREFIX}:{{auth}}:token:{digest}"


def token_index() -> str:
    return f"{PREFIX}:{{auth}}:tokens"


# -- people: accounts, invitations and sessions, one slot (`{acct}`) --------------------------------------------
# Account names are client text: `accounts.valid_name` allows letters, ASCII digits, `.`, `_` and `-` only (no
# `:`, no `{`), and the casefolded name comes last, so no name names another's key or shifts the hash tag.

ACCOUNTS: Final = f"{PREFIX}:{{acct}}"


def account(folded_name: str) -> str:
    return f"{ACCOUNTS}:user:{folded_name}"


def account_index() -> str:
    return f"{ACCOUNTS}:users"


def invitation(digest: str) -> str:
    return f"{ACCOUNTS}:invite:{digest}"


def password_reset(digest: str) -> str:
    """A password reset link's state, by the SHA-256 of its token (the token itself is never stored): a hash of
    `folded` (whose password it sets), `expires` (Unix ms) and `by` ("self-service" or the admin who asked). It
    lives 1 hour when the person asked for it, 24 hours when an admin did, and is deleted when used. The account
    names its one live reset in its field `reset` (the digest), so issuing a newer one voids the older
    (`lua/account_reset_issue.lua`), and the latest one used in `pw_reset` (`lua/account_reset.lua`)."""
    return f"{ACCOUNTS}:reset:{digest}"


def session(digest: str) -> str:
    return f"{ACCOUNTS}:session:{digest}"


def account_sessions(folded_name: str) -> str:
    return f"{ACCOUNTS}:sessions:{folded_name}"


# -- webhooks ------------------------------------------------------------------------------------------------

def webhooks() -> str:
    return f"{PREFIX}:{{hooks}}:webhooks"


def delivery(delivery_id: str) -> str:
    return f"{PREFIX}:{{hooks}}:delivery:{delivery_id}"


def deliveries_due() -> str:
    return f"{PREFIX}:{{hooks}}:due"


def deliveries_recent() -> str:
    return f"{PREFIX}:{{hooks}}:recent"


# -- email (`service.mail`): its job queue, the suppression list, used links (one slot: `{mail}`) ------------

MAIL: Final = f"{PREFIX}:{{mail}}"


def mail_owners() -> str:
    return f"{MAIL}:owners"


def mail_job(job_id: str) -> str:
    return f"{MAIL}:job:{job_id}"


def mail_due() -> str:
    return f"{MAIL}:due"


def mail_recent() -> str:
    return f"{MAIL}:recent"


def mail_suppressed() -> str:
    """Addresses no email goes to, by their keyed digest (`clients.email_hash`), never the address."""
    return f"{MAIL}:suppressed"


def mail_bounces(email_digest: str) -> str:
    return f"{MAIL}:bounces:{email_digest}"


def mail_link_used(nonce: str) -> str:
    """A one-click link's nonce (hex, from its verified signature), set once when the link is used."""
    return f"{MAIL}:link:{nonce}"


def mail_overdue() -> str:
    """Overdue reports moderators were emailed about: comment id -> the first open report's ms (its overdue
    period); a field leaves when the comment's reports are resolved."""
    return f"{MAIL}:overdue"


# -- the keys a script touches, in the order its KEYS table documents ----------------------------------------

def gate_keys(idempotency_key: str, captcha_marker: str, seen: str, ip_hash: str, email_digest: str,
              rate_limits: list[str]) -> list[str]:
    return [idempotency_key, captcha_marker, seen, reputation("ip", ip_hash), reputation("email", email_digest),
            *rate_limits]


def submit_keys(comment_id: str, article_id: str, *, indexed: bool = False) -> list[str]:
    """The store's seven keys (the article's order set, K[5], checks a reply's parent; the partition's claim
    hint, K[7], is lowered to a comment stored before it), then, `indexed`, the search block, last: the
    partition's `search_seq` alone (lib/store.lua's K[8]: the comment's n and slot; its terms are the
    indexer's, `service.indexer`)."""
    p = partition_of_comment(comment_id)
    return [comment(comment_id), pending(p), article(article_id), outbox(p),
            article_order(article_id), article_pending(article_id), claim_hint(p),
            *([search_seq(p)] if indexed else [])]


def claim_keys(partition: int) -> list[str]:
    """claim.lua's four keys of a partition (given for every partition of a claim on one server)."""
    return [leases(partition), holders(partition), pending(partition), claim_hint(partition)]


def claim_article_keys(article_id: str) -> list[str]:
    """A claim kept to one article: its partition's leases, holders and pending, then the article's pending
    index (it walks the article's queue from its head: no claim hint)."""
    p = partition_of_article(article_id)
    return [leases(p), holders(p), pending(p), article_pending(article_id)]


#: decide.lua's keys of one decision, by name, in their order: the script reads them as `K[KI.<name>]`, where
#: `KI` is made from this tuple (`scripts.py` puts it before the script's text), so the two cannot drift. The
#: comment's own two keys come first (`moderation.Moderation._decide_keys` keeps the others per article).
DECIDE_KEYS: Final = ("comment", "history", "pending", "leases", "holders", "article", "article_order", "feed",
                      "outbox", "stats", "article_pending", *DECIDED_STATES, "latency")


def decide_keys(comment_id: str, article_id: str, hour: int) -> list[str]:
    p = partition_of_comment(comment_id)
    named = {"comment": comment(comment_id), "history": history(comment_id), "pending": pending(p),
             "leases": leases(p), "holders": holders(p), "article": article(article_id),
             "article_order": article_order(article_id), "feed": feed(p), "outbox": outbox(p),
             "stats": stats(p, hour), "article_pending": article_pending(article_id),
             **{state: state_index(p, state) for state in DECIDED_STATES}, "latency": decision_latency(p, hour)}
    return [named[name] for name in DECIDE_KEYS]


def import_keys(comment_id: str, article_id: str) -> list[str]:
    """import.lua's eight keys (an imported or restored comment; the claim hint, K[8], is lowered to an imported
    pending comment); the indexes it joins follow them, then the search block, last."""
    p = partition_of_comment(comment_id)
    return [comment(comment_id), history(comment_id), pending(p), article(article_id),
            article_order(article_id), article_pending(article_id), feed(p), claim_hint(p)]


def index_batch_keys(partition: int, record_ids: Sequence[str], terms: Sequence[str]) -> list[str]:
    """index_batch.lua's keys: the partition's `search_done`, the records of the batch, then each term's key and
    its bucket (`terms`: distinct)."""
    return [search_done(partition), *(comment(i) for i in record_ids),
            *(key for term in terms for key in (term, search_bucket(term)))]


def lease_keys(partition: int) -> list[str]:
    """lease.lua's keys: renewal and release of one partition's leases (a release lowers the claim hint)."""
    return [leases(partition), holders(partition), pending(partition), claim_hint(partition)]


def erase_keys(comment_id: str, article_id: str, email_digest: str, ip_hash: str,
               words: Sequence[str] = ()) -> list[str]:
    """erase.lua's 17 keys, then the search block of the terms the comment leaves (`email_digest`, `ip_hash`:
    "" when it keeps that term; `words`, folded): left alone when the indexer has not reached the comment yet."""
    p = partition_of_comment(comment_id)
    return [comment(comment_id), history(comment_id), pending(p), leases(p), holders(p),
            article(article_id), article_order(article_id),
            feed(p), outbox(p), article_pending(article_id), *(state_index(p, state) for state in DECIDED_STATES),
            reports(comment_id), reported(p), report_counts(p),
            *search_keys(p, comment_terms(p, email_digest, ip_hash, words))]
