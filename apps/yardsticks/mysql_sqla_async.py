"""Yardstick of mysql_sqla_async: the same app as pg_sqla_async's yardstick, which picks aiomysql for a MySQL URL."""

from apps.yardsticks.pg_sqla_async import app

__all__ = ["app"]
