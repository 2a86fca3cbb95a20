"""Cart: each user's shopping cart, kept in Redis and priced by catalog whenever it is read."""
