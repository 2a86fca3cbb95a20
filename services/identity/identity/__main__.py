from chassis import runtime
from identity.bootstrap import IdentitySettings, build

runtime.run(IdentitySettings, build)
