from chassis import runtime
from payments.bootstrap import PaymentsSettings, build

runtime.run(PaymentsSettings, build)
