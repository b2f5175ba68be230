"""The daemon's HTTP server and everything it serves: health, metrics, the status page.

`server.build_web_app` is the one place routes are mounted; later endpoints (push callbacks, a
read API) add their own module here and one line there.
"""
