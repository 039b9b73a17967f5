"""Files in each source's own export format, built by the tests (never checked in): Vietnamese text, nested
replies, deleted and spam items, HTML bodies, a missing email, a URL that maps to nothing."""

from __future__ import annotations

import gzip
import sqlite3
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from xml.sax.saxutils import escape

import orjson

BASE: Final = "https://bao.example.vn"
#: With `--articles path`, these map to the article ids below; ROOT_URL maps to nothing (an empty path).
ARTICLE_URL: Final = f"{BASE}/thoi-su/bai-viet-1"
ARTICLE: Final = "thoi-su:bai-viet-1"
ROOT_URL: Final = f"{BASE}/"
#: Decomposed on purpose: the import must store it composed (NFC).
NAME_NFD: Final = unicodedata.normalize("NFD", "Nguyễn Văn An")
NAME: Final = "Nguyễn Văn An"
LONG_BODY: Final = "Rất dài. " * 700  # 6,300 characters: more than BODY_MAX


@dataclass(frozen=True)
class Post:
    """A comment of the scenario every format's fixture holds (ids as the source would write them)."""

    id: str
    parent: str | None
    state: str  # approved | pending | deleted | spam
    html: str
    name: str | None = "Trần Thị Bình"
    email: str | None = "binh@example.vn"
    url: str = ARTICLE_URL
    created: str = "2019-03-04T05:06:07Z"


#: The scenario. Expected outcome with `--articles path` (and the default state):
#: approved 1, 2, 3, 5, 9, 10, 11 (2 replies to 1, 3 to 2; 5 replies to the deleted 4: top-level; 9 replies to
#: 10, which comes after it in the file); rejected 4; spam 6; pending 7; 8 skipped (its URL maps to nothing).
POSTS: Final = (
    Post("1", None, "approved", "<p>Bài viết rất hay &amp; hữu ích.</p><p>Cảm ơn <a href=\"https://nguon.vn/a\">"
                                "tác giả</a>!</p>", name=NAME_NFD, created="2019-03-04T05:06:07Z"),
    Post("2", "1", "approved", "<p>Đồng ý với bạn.<br>Rất đúng.</p>", email=None, created="2019-03-04T06:00:00Z"),
    Post("3", "2", "approved", "<p>Trả lời lồng nhau: cấp ba.</p>", name="Lê Cường", created="2019-03-04T07:00:00Z"),
    Post("4", None, "deleted", "<p>Bình luận đã bị xoá.</p>", created="2019-03-05T01:00:00Z"),
    Post("5", "4", "approved", "<p>Trả lời bình luận đã xoá.</p>", created="2019-03-05T02:00:00Z"),
    Post("6", None, "spam", "<p>Mua thuốc giá rẻ tại <a href=\"http://spam.example\">đây</a></p>",
         created="2019-03-05T03:00:00Z"),
    Post("7", None, "pending", "<p>Chờ duyệt.</p>", created="2019-03-05T04:00:00Z"),
    Post("8", None, "approved", "<p>Trang chủ.</p>", url=ROOT_URL, created="2019-03-05T05:00:00Z"),
    Post("9", "10", "approved", "<p>Trả lời trước khi cha xuất hiện.</p>", created="2019-03-06T02:00:00Z"),
    Post("10", None, "approved", "<p>Cha xuất hiện sau.</p>", created="2019-03-06T01:00:00Z"),
    Post("11", None, "approved", f"<p>{LONG_BODY}</p>", name=None, created="2019-03-07T01:00:00Z"),
)
APPROVED: Final = ("1", "2", "3", "5", "9", "10", "11")


def disqus_xml(posts: tuple[Post, ...] = POSTS) -> str:
    threads = {ARTICLE_URL: "1001", ROOT_URL: "1002"}
    out = ['<?xml version="1.0" encoding="utf-8"?>',
           '<disqus xmlns="http://disqus.com" xmlns:dsq="http://disqus.com/disqus-internals" '
           'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
           '<category dsq:id="1"><forum>baoexample</forum><title>General</title><isDefault>true</isDefault>'
           '</category>']
    for url, thread_id in threads.items():
        out.append(f'<thread dsq:id="{thread_id}"><id>{thread_id}</id><forum>baoexample</forum>'
                   f'<category dsq:id="1"/><link>{escape(url)}</link><title>Bài viết</title><message/>'
                   f'<createdAt>2019-03-01T00:00:00Z</createdAt><author><name>Toà soạn</name>'
                   f'<isAnonymous>false</isAnonymous></author><isClosed>false</isClosed>'
                   f'<isDeleted>false</isDeleted></thread>')
    for post in posts:
        author = "".join([f"<name>{escape(post.name)}</name>" if post.name else "",
                          f"<email>{escape(post.email)}</email>" if post.email else "",
                          "<isAnonymous>false</isAnonymous>"])
        out.append(
            f'<post dsq:id="{post.id}"><id/><message><![CDATA[{post.html}]]></message>'
            f'<createdAt>{post.created}</createdAt>'
            f'<isDeleted>{str(post.state == "deleted").lower()}</isDeleted>'
            f'<isSpam>{str(post.state == "spam").lower()}</isSpam>'
            + ('<isApproved>false</isApproved>' if post.state == "pending" else '')
            + f'<author>{author}</author><ipAddress>203.0.113.{post.id}</ipAddress>'
            f'<thread dsq:id="{threads[post.url]}"/>'
            + (f'<parent dsq:id="{post.parent}"/>' if post.parent else "") + "</post>")
    out.append("</disqus>")
    return "\n".join(out)


def wordpress_xml(posts: tuple[Post, ...] = POSTS) -> str:
    states = {"approved": "1", "pending": "0", "spam": "spam", "deleted": "trash"}
    items: dict[str, list[str]] = {ARTICLE_URL: [], ROOT_URL: []}
    for post in posts:
        # WordPress keeps the author's own line breaks: paragraphs from them, not from <p>.
        content = post.html.replace("<p>", "").replace("</p>", "\n\n").strip()
        items[post.url].append(
            f"<wp:comment><wp:comment_id>{post.id}</wp:comment_id>"
            f"<wp:comment_author><![CDATA[{post.name or ''}]]></wp:comment_author>"
            f"<wp:comment_author_email><![CDATA[{post.email or ''}]]></wp:comment_author_email>"
            f"<wp:comment_author_url></wp:comment_author_url>"
            f"<wp:comment_author_IP><![CDATA[2001:db8::{post.id}]]></wp:comment_author_IP>"
            f"<wp:comment_date><![CDATA[{post.created[:19].replace('T', ' ')}]]></wp:comment_date>"
            f"<wp:comment_date_gmt><![CDATA[{post.created[:19].replace('T', ' ')}]]></wp:comment_date_gmt>"
            f"<wp:comment_content><![CDATA[{content}]]></wp:comment_content>"
            f"<wp:comment_approved><![CDATA[{states[post.state]}]]></wp:comment_approved>"
            f"<wp:comment_type><![CDATA[comment]]></wp:comment_type>"
            f"<wp:comment_parent>{post.parent or 0}</wp:comment_parent>"
            f"<wp:comment_user_id>0</wp:comment_user_id>"
            f"<wp:commentmeta><wp:meta_key><![CDATA[akismet_result]]></wp:meta_key>"
            f"<wp:meta_value><![CDATA[false]]></wp:meta_value></wp:commentmeta></wp:comment>")
    items[ARTICLE_URL].append(
        "<wp:comment><wp:comment_id>99</wp:comment_id><wp:comment_author><![CDATA[Blog khác]]></wp:comment_author>"
        "<wp:comment_date_gmt>2019-03-08 00:00:00</wp:comment_date_gmt>"
        "<wp:comment_content><![CDATA[[...] liên kết [...]]]></wp:comment_content>"
        "<wp:comment_approved>1</wp:comment_approved><wp:comment_type>pingback</wp:comment_type>"
        "<wp:comment_parent>0</wp:comment_parent></wp:comment>")
    body = "".join(
        f"<item><title>Bài viết</title><link>{escape(url)}</link><pubDate>Fri, 01 Mar 2019 00:00:00 +0000</pubDate>"
        f"<dc:creator><![CDATA[admin]]></dc:creator><content:encoded><![CDATA[<p>Nội dung bài.</p>]]>"
        f"</content:encoded><wp:post_id>{n}</wp:post_id><wp:post_type>post</wp:post_type>"
        f"<wp:status>publish</wp:status><wp:comment_status>open</wp:comment_status>{''.join(comments)}</item>"
        for n, (url, comments) in enumerate(items.items(), 1))
    return ('<?xml version="1.0" encoding="UTF-8" ?>\n'
            '<rss version="2.0" xmlns:excerpt="http://wordpress.org/export/1.2/excerpt/" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:wfw="http://wellformedweb.org/CommentAPI/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:wp="http://wordpress.org/export/1.2/">'
            f"<channel><title>Báo Ví Dụ</title><link>{BASE}</link><wp:wxr_version>1.2</wp:wxr_version>"
            f"<wp:base_site_url>{BASE}</wp:base_site_url>{body}</channel></rss>\n")


#: Isso's own schema (isso/db/threads.py, isso/db/comments.py, isso/db/__init__.py).
ISSO_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS preferences (key VARCHAR PRIMARY KEY, value VARCHAR)",
    "CREATE TABLE IF NOT EXISTS threads (id INTEGER PRIMARY KEY, uri VARCHAR(256) UNIQUE, title VARCHAR(256))",
    "CREATE TABLE IF NOT EXISTS comments (tid REFERENCES threads(id), id INTEGER PRIMARY KEY, parent INTEGER, "
    "created FLOAT NOT NULL, modified FLOAT, mode INTEGER, remote_addr VARCHAR, text VARCHAR, author VARCHAR, "
    "email VARCHAR, website VARCHAR, likes INTEGER DEFAULT 0, dislikes INTEGER DEFAULT 0, voters BLOB NOT NULL, "
    "notification INTEGER DEFAULT 0)",
)


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def isso_db(path: Path, posts: tuple[Post, ...] = POSTS) -> Path:
    """Isso stores markdown, not HTML: the fixture's text is the HTML's words. Deleted comments with replies are
    kept by Isso as mode 4 with the text emptied."""
    from service.importing.htmltext import html_to_text

    modes = {"approved": 1, "pending": 2, "deleted": 4, "spam": 2}
    connection = sqlite3.connect(path)
    with connection:
        for statement in ISSO_SCHEMA:
            connection.execute(statement)
        connection.execute("INSERT INTO threads (id, uri, title) VALUES (1, '/thoi-su/bai-viet-1', 'Bài viết')")
        connection.execute("INSERT INTO threads (id, uri, title) VALUES (2, '/', 'Trang chủ')")
        for post in posts:
            if post.state == "spam":
                continue  # Isso has no spam state (its spam guard refuses them)
            text = "" if post.state == "deleted" else html_to_text(post.html)
            connection.execute(
                "INSERT INTO comments (tid, id, parent, created, modified, mode, remote_addr, text, author, email, "
                "website, voters) VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, NULL, ?)",
                (1 if post.url == ARTICLE_URL else 2, int(post.id), int(post.parent) if post.parent else None,
                 _epoch(post.created), modes[post.state], "198.51.100.0", text, post.name, post.email, b""))
    connection.close()
    return path


def commento_json(posts: tuple[Post, ...] = POSTS, *, gzipped: bool = True) -> bytes:
    from service.importing.htmltext import html_to_text

    commenters = {}
    comments = []
    for post in posts:
        hexid = "anonymous" if post.name is None else f"c{abs(hash((post.name, post.email))) % 10**8:08d}"
        if post.name is not None:
            commenters[hexid] = {"commenterHex": hexid, "email": post.email or "", "name": post.name, "link": "",
                                 "photo": "", "provider": "commento", "joinDate": "2019-01-01T00:00:00Z",
                                 "isModerator": False}
        comments.append({
            "commentHex": f"{int(post.id):064x}", "domain": "bao.example.vn",
            "url": post.url.removeprefix(BASE), "commenterHex": hexid, "markdown": html_to_text(post.html),
            "html": post.html, "parentHex": f"{int(post.parent):064x}" if post.parent else "root", "score": 0,
            "state": {"approved": "approved", "pending": "unapproved", "spam": "flagged",
                      "deleted": "approved"}[post.state],
            "creationDate": post.created.replace("Z", ".123456789Z"), "direction": 0,
            "deleted": post.state == "deleted"})
    raw = orjson.dumps({"version": 1, "comments": comments, "commenters": list(commenters.values())})
    return gzip.compress(raw) if gzipped else raw


def billion_laughs() -> str:
    """The classic XML bomb: ten levels of ten references, a billion 'lol's once expanded."""
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)]
    return ('<?xml version="1.0"?>\n<!DOCTYPE disqus [\n' + "\n".join(entities) + "\n]>\n"
            '<disqus xmlns="http://disqus.com"><post><message>&lol9;</message></post></disqus>\n')


def external_entity() -> str:
    return ('<?xml version="1.0"?>\n<!DOCTYPE disqus [<!ENTITY secret SYSTEM "file:///etc/passwd">]>\n'
            '<disqus xmlns="http://disqus.com"><post><message>&secret;</message></post></disqus>\n')
