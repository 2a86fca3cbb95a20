from chassis import runtime
from shipping.bootstrap import ShippingSettings, build

runtime.run(ShippingSettings, build)
