"""tools_helpers.py - running the operator subcommands (`pgsluice tune`, `pgsluice userlist`) in tests."""
import os
import subprocess

from harness.pooler import pooler_binary

# Variables the tools read: a test sets exactly the ones it means.
TOOL_ENV_VARS = ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_PASSWORD_FILE", "SAV3_USER", "SAV3_PASSWORD",
                 "SAV3_PASSWORD_FILE", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGPASSWORD_FILE", "PGDATABASE",
                 "PGSLUICE_CONFIG", "NOTIFY_SOCKET")


def sluice_bin():
    """The pgsluice binary (the tools are subcommands of it), whatever POOLER is under test."""
    return pooler_binary("pgsluice")


def run_tool(args, env=None, timeout=60):
    """Run `pgsluice ARGS...` with a clean tool environment plus env; returns CompletedProcess (text)."""
    e = {k: v for k, v in os.environ.items() if k not in TOOL_ENV_VARS}
    e.update(env or {})
    return subprocess.run([sluice_bin()] + list(args), env=e, capture_output=True, text=True, timeout=timeout)


def files_in(d):
    return sorted(os.listdir(d))
