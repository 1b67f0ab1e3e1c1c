"""Ray glue: judge worker actors and the pool that feeds them. No judging logic lives here."""
