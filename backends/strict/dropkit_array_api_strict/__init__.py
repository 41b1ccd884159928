"""array_api_strict backend for dropkit: proves the core uses only the standard."""
