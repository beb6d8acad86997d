"""The HTTP front end: FastAPI app, routes, error rendering."""
