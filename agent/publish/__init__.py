"""Streaming results to the fleet broker over MQTT (optional: the `mqtt` extra)."""
