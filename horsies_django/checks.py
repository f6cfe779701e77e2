"""System checks for settings.HORSIES (ids horsies_django.E001..., W001...)."""
