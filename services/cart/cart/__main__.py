from cart.bootstrap import CartSettings, build
from chassis import runtime

runtime.run(CartSettings, build)
