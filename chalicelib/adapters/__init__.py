"""Implementations of the ports in `chalicelib.ports`: on AWS (dynamodb, s3, sqs) and in
memory (memory). `chalicelib.wiring` picks and builds them."""
