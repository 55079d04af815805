"""How components talk without sharing objects: narrow interfaces (`base`) and backends."""
