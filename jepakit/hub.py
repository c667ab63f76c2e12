"""``hf://user/name`` sources: a repository on the Hugging Face hub, read through the hub's cache.

Wherever jepakit reads a run or an export folder (``probe``, ``target_updater=frozen``,
``train.init_from``), ``hf://user/name`` (``@revision`` pins one) names a repository that
``jepakit push`` (``jepakit.publish``) wrote; it is read through the hub's cache, so an offline
machine (``HF_HUB_OFFLINE=1``) reads what was downloaded before.
"""

from __future__ import annotations

from pathlib import Path

from .config import MissingFileError

__all__ = ["HUB_PREFIX", "hub_repo", "local_path"]

HUB_PREFIX = "hf://"


def hub_repo(source: str | Path) -> tuple[str, str | None] | None:
    """(repo id, revision or None) of ``hf://user/name[@revision]``; None for a local path."""
    text = str(source)
    if not text.startswith(HUB_PREFIX):
        return None
    repo, _, revision = text[len(HUB_PREFIX) :].partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise MissingFileError(f"{text!r}: a hub source is hf://USER/NAME or hf://USER/NAME@REVISION")
    return repo, revision or None


def local_path(source: str | Path) -> Path:
    """``source`` as a local path: a hub source downloaded (or found in the hub's cache when offline)."""
    named = hub_repo(source)
    if named is None:
        return Path(source)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo, revision = named
    try:
        return Path(snapshot_download(repo, revision=revision))
    except LocalEntryNotFoundError:
        raise MissingFileError(
            f"{source}: not in the Hugging Face cache, and the hub cannot be reached (HF_HUB_OFFLINE or no "
            "network): download it once where the hub can be reached"
        ) from None
    except HfHubHTTPError as e:
        raise MissingFileError(f"{source}: the hub refused it ({' '.join(str(e).split())[:200]})") from None
