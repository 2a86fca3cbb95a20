from catalog.bootstrap import CatalogSettings, build
from chassis import runtime

runtime.run(CatalogSettings, build)
