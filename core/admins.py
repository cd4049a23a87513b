"""Who is an admin: decided here once, from ADMIN_IDS and the verified sender id."""

from __future__ import annotations

from dataclasses import dataclass

# Whoever runs `parley chat` or `parley admin` on the host already holds Redis and the settings.
LOCAL_PLATFORMS = frozenset({"terminal", "cli"})


@dataclass(frozen=True, slots=True)
class Admins:
    """ADMIN_IDS as `platform:user_id` entries; people at the host's own shell are admins too."""

    ids: frozenset[str] = frozenset()

    def __call__(self, platform: str, user_id: str) -> bool:
        """Whether this verified sender may run admin commands."""
        return platform in LOCAL_PLATFORMS or f"{platform}:{user_id}" in self.ids
