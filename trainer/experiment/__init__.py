"""`dagrpo experiment`: every (scenario, method, seed) of a preset in one harness (driver.py reads first)."""
