"""Yardstick of mysql_sqla_sync: the same app as pg_sqla_sync's yardstick, which picks PyMySQL for a MySQL URL."""

from apps.yardsticks.pg_sqla_sync import app

__all__ = ["app"]
