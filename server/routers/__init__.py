"""HTTP routes, one module per resource; each only translates and delegates."""
