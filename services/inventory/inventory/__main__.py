from chassis import runtime
from inventory.bootstrap import InventorySettings, build

runtime.run(InventorySettings, build)
