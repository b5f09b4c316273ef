"""Yardstick of pg_sqla_sync (and mysql_sqla_sync): SQLAlchemy's sync engine, a session from a `yield` dependency."""

import os
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict
from sqlalchemy import BigInteger, create_engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

# The driver of the variant measured beside it: psycopg 3 on PostgreSQL, PyMySQL on MySQL/MariaDB.
url = make_url(os.environ["BENCH_DATABASE_URL"])
dialect = "postgresql" if url.get_backend_name() in ("postgresql", "postgres") else "mysql"
engine = create_engine(
    url.set(drivername={"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}[dialect]),
    pool_size=int(os.environ.get("BENCH_POOL_SIZE", "5")),
    max_overflow=int(os.environ.get("BENCH_MAX_OVERFLOW", "10")),
)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "bench_items"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str]
    description: Mapped[str | None]
    price: Mapped[float]
    quantity: Mapped[int]


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    description: str | None
    price: float
    quantity: int


def get_session() -> Iterator[Session]:
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
app = FastAPI()


@app.get("/items/{item_id}", response_model=ItemOut)
def read_item(item_id: int, session: SessionDep) -> Item:
    item = session.get(Item, item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="item not found")
    return item
