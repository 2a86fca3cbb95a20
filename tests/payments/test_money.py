"""Money is conserved whatever order, repetition and crashes the order events come with."""

from __future__ import annotations

from collections import Counter, deque
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chassis.messaging import Envelope
from payments.handlers import OrderNotPlacedYet
from tests.payments.conftest import Payments, new_order_id, order_cancelled, order_confirmed, order_placed
from tests.payments.test_handlers import Crash, CrashAfterTheProviderAnswers

APPROVED = {"tok_visa", "tok_mastercard"}
TOKENS = st.sampled_from([*APPROVED, "tok_chargeDeclined", "tok_insufficientFunds", "tok_stolen"])


def order_event(kind: str, order_id: str, token: str, total: int) -> Envelope:
    if kind == "placed":
        return order_placed(order_id, token=token, total=total)
    return (order_confirmed if kind == "confirmed" else order_cancelled)(order_id, total=total)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[tuple[str, int]], list[tuple[int, str, bool]]]:
    """Orders (token, total) and the deliveries of their events: shuffled, repeated, some crashing."""
    orders = draw(st.lists(st.tuples(TOKENS, st.integers(1, 10**7)), min_size=1, max_size=3))
    deliveries = []
    for index in range(len(orders)):
        for kind, most in (("placed", 2), ("confirmed", 2), ("cancelled", 2)):
            deliveries += [(index, kind)] * draw(st.integers(1 if kind == "placed" else 0, most))
    shuffled = draw(st.permutations(deliveries))
    crashes = draw(st.lists(st.booleans(), min_size=len(shuffled), max_size=len(shuffled)))
    return orders, [(index, kind, crash) for (index, kind), crash in zip(shuffled, crashes, strict=True)]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(history=histories())
async def test_captured_minus_refunded_is_the_total_of_the_orders_kept(
    payments: Payments, history: tuple[list[tuple[str, int]], list[tuple[int, str, bool]]]
) -> None:
    orders, deliveries = history
    order_ids = [new_order_id() for _ in orders]
    crashing = CrashAfterTheProviderAnswers(payments.provider)
    # Like the broker: a delivery that fails comes back later, as the same event.
    pending = deque((order_event(kind, order_ids[index], *orders[index]), crash) for index, kind, crash in deliveries)
    while pending:
        event, crash = pending.popleft()
        try:
            await payments.deliver(event, provider=crashing if crash else None)
        except (Crash, OrderNotPlacedYet):
            pending.append((event, False))

    kinds = [Counter(kind for index, kind, _ in deliveries if index == order) for order in range(len(orders))]
    for order_id, (token, total), seen in zip(order_ids, orders, kinds, strict=True):
        kept = total if token in APPROVED and seen["confirmed"] and not seen["cancelled"] else 0
        payment = await payments.payment(order_id)
        assert payment is not None and payment.kept == kept

        charges = await payments.charges(order_id)
        assert len(charges) <= 1, "at most one charge per order"
        provider_kept = sum(to_cents(c["amount_captured"] - c["amount_refunded"]) for c in charges)
        assert provider_kept == kept
        if seen["cancelled"]:
            assert not [charge for charge in charges if charge["status"] == "requires_capture"], "no hold left"
        published = Counter(name for name, _ in await payments.published(order_id))
        assert max(published.values(), default=0) <= 1, "each payment event at most once"


def to_cents(amount: Decimal) -> int:
    return int(amount * 100)
