"""The NATS side: the only package that imports nats. Streams, publisher, live feed, history."""
