"""Yardstick of pg_sqla_blocking: SQLAlchemy's sync session inside `async def` (the anti-pattern, on purpose)."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy.orm import Session

from apps.yardsticks.pg_sqla_sync import Item, ItemOut, engine


async def get_session() -> AsyncIterator[Session]:
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
app = FastAPI()


@app.get("/items/{item_id}", response_model=ItemOut)
async def read_item(item_id: int, session: SessionDep) -> Item:
    item = session.get(Item, item_id)  # blocks the event loop for the whole query
    if item is None:
        raise HTTPException(status_code=404, detail="item not found")
    return item
