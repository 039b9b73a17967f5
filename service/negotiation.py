"""Content negotiation: the quality values of an `Accept-*` header (RFC 9110 §12.4.2), read one way for the
reader's language (`i18n.negotiate`) and the widget's encoding (`api.widget`)."""

from __future__ import annotations


def quality_values(header: str) -> list[tuple[str, float]]:
    """Each item of the header in order, lowercased, with its weight: 1 unless a `q` parameter says otherwise, 0
    when that cannot be read."""
    weights: list[tuple[str, float]] = []
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        weights.append((name.strip().lower(), quality))
    return weights
