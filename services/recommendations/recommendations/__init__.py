"""Recommendations: "bought together" learned from confirmed orders, best sellers when cold."""
