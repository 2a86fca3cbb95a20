"""Notifications: the emails customers get, one per event."""
