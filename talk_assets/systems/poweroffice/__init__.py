"""PowerOffice GO API v2: sandbox, models and client."""
