"""Configs of the `simclr-tf` command: Python modules whose `get_config()`
returns a nested dict; `--config=<module name>` picks one."""
