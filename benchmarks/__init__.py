"""Measurements that are not tests (timings, memory): run them, never assert on them."""
