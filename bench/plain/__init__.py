"""The yardstick of ``bench.sidebyside``: the plain Celery webhook task a typical user writes."""
