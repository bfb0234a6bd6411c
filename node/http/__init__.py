"""The HTTP face of a node: one aiohttp app, its middleware, the handlers, OpenAPI and the dashboard."""
