"""Data classification levels, ordered from least to most sensitive."""
from __future__ import annotations

PUBLIC = "public"
INTERNAL = "internal"
CONFIDENTIAL = "confidential"
RESTRICTED = "restricted"

LEVELS = (PUBLIC, INTERNAL, CONFIDENTIAL, RESTRICTED)
LEVEL_CHOICES = [(level, level) for level in LEVELS]


def rank(level: str) -> int:
    try:
        return LEVELS.index(level)
    except ValueError:
        raise ValueError(f"unknown classification level {level!r}; levels are {', '.join(LEVELS)}") from None


def highest(levels: list[str] | tuple[str, ...], default: str = PUBLIC) -> str:
    return max(levels, key=rank, default=default)


def allows(ceiling: str, level: str) -> bool:
    """Whether data at ``level`` may be used where ``ceiling`` is the highest level allowed."""
    return rank(level) <= rank(ceiling)
