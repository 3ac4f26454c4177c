"""The typed event catalog: payload Structs, the rules in `streams_config/catalog.toml`, and its exports."""

from notifier.catalog.rules import CATALOG_FILE, Catalog, CatalogConfigError, load_catalog

__all__ = ["CATALOG_FILE", "Catalog", "CatalogConfigError", "load_catalog"]
