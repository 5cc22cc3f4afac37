"""Rings across hosts: a JetStream bridge (export a ring's records to NATS, import them into a ring
of the same layout on another host) and the order-event journal read back from JetStream."""
