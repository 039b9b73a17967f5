"""Comments brought from other systems (Disqus, WordPress, Isso, Commento) and our own export restored.

Each format has a reader (`disqus`, `wordpress`, `isso`, `commento`, `ours`) that streams the file as
`source.SourceComment`s (ours: as stored entries, `writer.Entry`); `importer` turns those into the records the
service itself stores (`lua/import.lua` writes them) and reports what it did; `articles` maps thread URLs to
article ids; `htmltext` turns HTML bodies into plain text. `comments-service import` runs it.
"""
