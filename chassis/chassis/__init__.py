"""Agora chassis: mechanisms shared by every service, never business rules."""
