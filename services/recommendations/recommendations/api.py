"""Recommendations' gRPC API: public (the product page needs no token), translates only."""

from __future__ import annotations

import asyncpg
from agora.recommendations.v1 import recommendations_pb2, recommendations_pb2_grpc

from chassis.grpc import InvalidArgument
from recommendations import domain, handlers

MAX_PRODUCT_ID_LENGTH = 100


class RecommendationsApi(recommendations_pb2_grpc.RecommendationsServiceServicer):
    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    async def Recommend(self, request, context):  # type: ignore[no-untyped-def]
        violations = []
        if not request.product_id or len(request.product_id) > MAX_PRODUCT_ID_LENGTH:
            violations.append(("product_id", f"must be 1 to {MAX_PRODUCT_ID_LENGTH} characters"))
        try:
            limit = domain.answer_size(request.limit)
        except domain.InvalidLimit as error:
            violations.append(("limit", str(error)))
        if violations:
            raise InvalidArgument(violations)
        product_ids = await handlers.recommend(request.product_id, limit, pool=self._pool)
        return recommendations_pb2.RecommendResponse(product_ids=product_ids)
