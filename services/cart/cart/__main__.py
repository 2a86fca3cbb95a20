from chassis import runtime

from cart.bootstrap import CartSettings, build

runtime.run(CartSettings, build)
