"""Implementations of the ports in `chalicelib.ports`: on AWS (dynamodb, s3, sqs) and in
memory (memory_catalog, memory_store, memory_queue). `chalicelib.wiring` builds them."""
