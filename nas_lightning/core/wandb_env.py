"""Where W&B credentials and the W&B mode come from, read without importing wandb."""

from __future__ import annotations

import netrc
import os


def _api_host() -> str:
    from urllib.parse import urlparse

    url = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    return urlparse(url).hostname or "api.wandb.ai"


def has_api_key() -> bool:
    """Whether W&B can find credentials: its environment variables or ``wandb login``'s netrc."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    try:
        return bool(netrc.netrc(os.environ.get("NETRC")).authenticators(_api_host()))
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(mode: str | None) -> str:
    """The W&B mode: as configured, else ``WANDB_MODE``, else online only if logged in."""
    if mode:
        return mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if has_api_key() else "offline"
