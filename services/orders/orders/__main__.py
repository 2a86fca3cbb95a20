from chassis import runtime
from orders.bootstrap import OrdersSettings, build

runtime.run(OrdersSettings, build)
