"""peeringd tests."""
