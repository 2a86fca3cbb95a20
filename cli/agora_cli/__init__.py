"""agora: the one command that starts, supervises, inspects and stops the city."""
