"""MySQL/MariaDB through SQLAlchemy's asyncio engine on aiomysql; `async def` routes await on the event loop.

Deliberately the same code as `pg_sqla_async`: only the driver differs, so the comparison across databases
measures the database and its driver, not the service.
"""

from __future__ import annotations

from apps.catalog import VariantSpec
from apps.pg_sqla_async import build_app

VARIANT: VariantSpec = {"backend": "mysql", "mode": "async", "driver": "sqlalchemy+aiomysql", "pooled": True}

app = build_app(__name__, VARIANT, "aiomysql")
