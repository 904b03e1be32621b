"""optbench's asv suite (modules bench_*.py) and stand-alone benchmark scripts."""
