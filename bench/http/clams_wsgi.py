"""gunicorn entry point for part (3b): the SDK's own WSGI app for clams_app.py, as the SDK's
serve_production hands it to gunicorn (`gunicorn clams_wsgi:app`)."""
from clams import Restifier

from clams_app import get_app

app = Restifier(get_app()).flask_app
