"""The ``posture`` commands, in ``--help`` order: each is a module of :mod:`agent.commands` with
``register(subparsers)``. The CLI builds its parser from this list; ``posture demo`` asks it
which commands this build has. (Only :mod:`agent.cli` imports :mod:`agent.commands`.)
"""

COMMANDS: tuple[str, ...] = ("scan", "findings", "config", "catalog", "report",
                             "run", "digest", "notify", "history", "record_scan", "prune", "demo", "eol",
                             "export", "duty", "pack", "watch", "worker")
