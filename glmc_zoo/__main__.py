"""`python -m glmc_zoo` is the `glmc-zoo` command."""

from glmc_zoo.cli import app

app(prog_name="glmc-zoo")
