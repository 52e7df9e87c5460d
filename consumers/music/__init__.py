"""The adaptive score: pure, typed music logic with no Kafka imports (live and replay)."""
