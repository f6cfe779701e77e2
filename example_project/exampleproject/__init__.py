"""The horsies_django example project: a shop whose orders are handled in the background."""
