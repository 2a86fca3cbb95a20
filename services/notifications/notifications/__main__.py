from chassis import runtime
from notifications.bootstrap import NotificationsSettings, build

runtime.run(NotificationsSettings, build)
