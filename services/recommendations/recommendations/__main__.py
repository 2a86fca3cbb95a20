from chassis import runtime
from recommendations.bootstrap import RecommendationsSettings, build

runtime.run(RecommendationsSettings, build)
