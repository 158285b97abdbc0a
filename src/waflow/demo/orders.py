"""The shop's order API the demo flow calls from its `http` node (a tiny local service)."""

from __future__ import annotations

import itertools

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def orders_app() -> Starlette:
    counter = itertools.count(4821)
    orders: list[dict[str, object]] = []

    async def create(request: Request) -> JSONResponse:
        body = await request.json()
        if not isinstance(body, dict) or not body.get("drink"):
            return JSONResponse({"error": "drink is required"}, status_code=400)
        order = {"id": f"#{next(counter)}", "ready_in": 5, **body}
        orders.append(order)
        return JSONResponse(order, status_code=201)

    async def listing(_request: Request) -> JSONResponse:
        return JSONResponse(orders)

    app = Starlette(routes=[Route("/orders", create, methods=["POST"]), Route("/orders", listing, methods=["GET"])])
    app.state.orders = orders
    return app
