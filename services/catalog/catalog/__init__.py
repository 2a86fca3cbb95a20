"""Catalog: products, categories, prices and search. Honest CRUD: there are no rules to model."""
