"""The items table, defined once for every SQL variant and for the harness that seeds it."""

from __future__ import annotations

from sqlalchemy import BigInteger, Double, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named in apps/sql_common.py, which the raw-driver variants read without importing SQLAlchemy.
from apps.sql_common import ITEMS_TABLE


class Base(DeclarativeBase):
    pass


class ItemRow(Base):
    __tablename__ = ITEMS_TABLE

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    price: Mapped[float] = mapped_column(Double, nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    __table_args__ = (Index(f"ix_{ITEMS_TABLE}_name", "name"),)
