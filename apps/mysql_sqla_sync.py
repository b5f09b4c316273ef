"""MySQL/MariaDB through SQLAlchemy's sync engine on PyMySQL; `def` routes run in FastAPI's thread pool.

Deliberately the same code as `pg_sqla_sync`: only the driver differs, so the comparison across databases
measures the database and its driver, not the service.
"""

from __future__ import annotations

from apps.catalog import VariantSpec
from apps.pg_sqla_sync import build_app

VARIANT: VariantSpec = {"backend": "mysql", "mode": "sync", "driver": "sqlalchemy+pymysql", "pooled": True}

app = build_app(__name__, VARIANT, "pymysql")
