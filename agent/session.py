"""What every command needs: the config, the clock, the database."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from agent.config import Config, load_config
from agent.errors import StorageUnavailable, UsageError
from vocab import one_line

if TYPE_CHECKING:
    from state.store import Store


def parse_now(text: str | None, tz: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise UsageError(f"--now {text!r} is not an ISO 8601 date or time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    try:
        at = value.astimezone(UTC)
    except OverflowError:
        raise UsageError(f"--now {text!r} is out of range") from None
    from agent.when import in_range

    return in_range(at, "--now", text)


@dataclass
class Session:
    config: Config
    config_hash: str
    db_url: str | None
    now: datetime | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Session:
        config, digest = load_config(args.config)
        now = parse_now(args.now, config.agent.timezone)
        return cls(config, digest, args.db or config.agent.database, now)

    def clock_now(self) -> datetime:
        return self.now or datetime.now(UTC)

    def open_store(self) -> Store:
        from state.errors import BadUrl, StoreError
        from state.store import Store, default_db_url

        url = self.db_url or default_db_url()
        try:
            return Store.open(url)
        except BadUrl as exc:  # the store's messages are one line, password hidden
            raise UsageError(str(exc)) from None
        except StoreError as exc:
            raise StorageUnavailable(str(exc)) from None
        except Exception as exc:
            text = one_line(exc, named=False, limit=240)
            raise StorageUnavailable(f"cannot open database {mask_url(url)}: {text}") from None


def mask_url(url: str) -> str:
    """A database URL as shown anywhere: no user, password or query (state.engine.shown_db_url)."""
    from state.engine import shown_db_url

    return shown_db_url(url)


def operator(by: str | None) -> str:
    """Who made a decision: ``--by``, else the (sudo) user running posture."""
    import getpass
    import os

    if by and by.strip():
        return by.strip()
    user = os.environ.get("SUDO_USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): say so rather than guess
        return "unknown"
