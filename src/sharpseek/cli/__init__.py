"""`sharpseek ...`: the typer command line, one module per command group (thin shells)."""
