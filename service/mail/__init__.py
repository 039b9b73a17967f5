"""Email: moderators hear of new comments, authors hear of decisions and replies; nothing waits for a mail server.

`mailer.Mail` (an outbox consumer and a durable job queue: see its docstring), `messages` (templates and
headers), `links` (the signed links of emails) and `smtp` (the connection). Off unless `COMMENTS_SMTP_URL` and
`COMMENTS_MAIL_FROM` are set.
"""
