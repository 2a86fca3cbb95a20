from analytics.bootstrap import AnalyticsSettings, build
from chassis import runtime

runtime.run(AnalyticsSettings, build)
