"""Analytics: projections of the shop's events, the admin's sales report, and their replay."""
