"""What a service forked by the fork server sees of itself, written as JSON to $PROBE_OUT.

Then it sleeps $PROBE_SLEEP seconds and exits with status $PROBE_EXIT.
"""

import json
import os
import sys
import time

with open(os.environ["PROBE_OUT"], "w") as out:
    json.dump(
        {
            "pid": os.getpid(),
            "own_process_group": os.getpgid(0) == os.getpid(),
            "preloaded": "chassis.runtime" in sys.modules,
            "value": os.environ.get("PROBE_VALUE"),
            "inherited": os.environ.get("PROBE_ONLY_IN_THE_FORK_SERVER"),
            "argv": sys.argv[1:],
            "cmdline": open("/proc/self/cmdline", "rb").read().split(b"\0")[0].decode(),
            "name": __name__,
        },
        out,
    )
print("probe says hello", flush=True)
time.sleep(float(os.environ.get("PROBE_SLEEP", "0")))
sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
