"""Pure values: envelopes, channels, cursors, identities, errors, limits, and the broker protocols."""
