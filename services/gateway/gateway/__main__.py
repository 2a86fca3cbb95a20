from chassis import runtime
from gateway.bootstrap import GatewaySettings, build

runtime.run(GatewaySettings, build)
