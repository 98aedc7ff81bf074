"""Sending the queue: claims under a lease, delivery and its outcomes, connections, rate
limits, sender holds, queue health and the Prometheus metrics of all of it."""
