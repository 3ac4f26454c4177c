"""Operations: metrics, background tasks, log format, GC pause watch."""
