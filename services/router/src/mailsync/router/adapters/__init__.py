"""MongoDB read models and stores of the router. Each store owns its collections and their indexes."""
