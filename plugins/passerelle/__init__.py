"""Passerelle: keeps a retailer's back office (PostgreSQL) and online shop (files over FTP) in step."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

#: Root of the project (the folder holding dags/, plugins/, include/).
PROJECT_ROOT = Path(__file__).resolve().parents[2]
INCLUDE = PROJECT_ROOT / "include"
SQL_DIR = INCLUDE / "sql"
