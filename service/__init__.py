"""Pre-moderated comments for news sites."""

__version__ = "0.1.0"
