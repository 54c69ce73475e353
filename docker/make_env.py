"""Write a .env for docker-compose.yaml from .env.example, with fresh random secrets.

    python3 docker/make_env.py > .env
    python3 docker/make_env.py --example path/to/.env.example > .env

Every ``change-me-<name>`` placeholder in the example is replaced by a random value, the same
placeholder by the same value everywhere (so a password and the connection URI that embeds it
agree). Values are URL-safe hex, except ``change-me-fernet-key`` which becomes a Fernet key.
Standard library only, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import secrets
import sys
from pathlib import Path

PLACEHOLDER = re.compile(r"change-me-[a-z0-9-]*[a-z0-9]")
DEFAULT_EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"


def fernet_key() -> str:
    """A key in the format Airflow's [core] fernet_key expects (32 random bytes, url-safe base64)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def secret_for(placeholder: str) -> str:
    """A fresh value for one placeholder."""
    if placeholder.endswith("fernet-key"):
        return fernet_key()
    return secrets.token_hex(24)


def render(example: str) -> str:
    """Return the example's text with every placeholder replaced, consistently."""
    values: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(0)
        if name not in values:
            values[name] = secret_for(name)
        return values[name]

    lines = []
    for line in example.splitlines(keepends=True):
        lines.append(line if line.lstrip().startswith("#") else PLACEHOLDER.sub(replace, line))
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", type=Path, default=DEFAULT_EXAMPLE, help="the .env.example to start from")
    args = parser.parse_args(argv)
    try:
        text = args.example.read_text(encoding="utf-8")
    except FileNotFoundError:
        print(f"make_env: {args.example} not found (run from the project's checkout)", file=sys.stderr)
        return 2
    sys.stdout.write(render(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
