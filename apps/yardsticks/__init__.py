"""Yardsticks: for each variant, the shortest idiomatic FastAPI app of the same access pattern (`bench overhead`).

Each module is what a user would write in ~30 lines: one `GET /items/{item_id}` route, the same driver, pool
settings and table, and nothing of ours (no contract, telemetry, middleware or settings class). They import
nothing from `apps` or `bench` on purpose: a yardstick that shared our code would share its costs. A yardstick
module has the name of the variant it measures; `bench overhead` runs the two side by side.
"""
