"""Orders: the example app whose background work runs on horsies_django."""
