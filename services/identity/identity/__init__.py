"""Identity: accounts, credentials and the tokens every other service trusts."""
