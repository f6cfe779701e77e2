"""The horsies_django example project: a shop that validates and processes orders in the background."""
