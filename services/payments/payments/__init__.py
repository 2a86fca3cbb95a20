"""Payments: authorize, capture, void and refund an order's payment through the payment provider."""
