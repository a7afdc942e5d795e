"""TEST DOUBLE of the clams-python SDK (not the SDK).

clams-python is not a Debian package, so the tests cannot install it. This package stands in for
it in the tests of `clams serve app.py` (tests/e2e/python_adapter/) and in bench/http: it exposes
only the surface that clams-cpp's Python worker adapter (python/clams_worker.py) and a
template-shaped app use, written from the SDK's documented behaviour in
shared/spec/clams-app-behavior.md (clams-python 1.7.3):

  clams.ClamsApp, clams.app.ClamsApp      the app base class: metadata (with the four universal
                                          parameters), annotate (parameter casting and
                                          refinement, warnings view, view signing, runningTime),
                                          record_error (the SDK's error view)
  clams.Restifier, clams.restify.Restifier  Restifier(app).flask_app on Debian's python3-flask,
                                          with the SDK's status codes, content types and bodies

Everything else of the SDK (pydantic AppMetadata, mmif-python objects, envelopes, gunicorn, GPU
profiling) is absent. Never ship it.
"""
from clams.app import ClamsApp
from clams.restify import Restifier

__all__ = ["ClamsApp", "Restifier"]
