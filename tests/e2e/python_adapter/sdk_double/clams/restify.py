"""TEST DOUBLE of clams.restify (clams-python 1.7.3), see clams/__init__.py.

Restifier(app).flask_app answers as the SDK's Flask-RESTful resource does
(shared/spec/clams-app-behavior.md §1): one route `/`; GET -> app.appmetadata(**query);
POST/PUT -> app.annotate(body, **query) as application/json; input that is not JSON or not MMIF ->
500 text/plain "Invalid input data. See below for validation error.\\n\\n<reason>"; anything the app
raises -> 500 with the error view, pretty-printed; other verbs -> 405 {"message": ...}.
"""
import json

from flask import Flask, Response, request

from clams.app import ClamsApp, InvalidMmif

__all__ = ["Restifier"]

INVALID_INPUT = "Invalid input data. See below for validation error.\n\n"
METHOD_NOT_ALLOWED = {"message": "The method is not allowed for the requested URL."}


class Restifier:
    def __init__(self, app_instance: ClamsApp, loopback=False, port=5000, debug=True):
        self.cla = app_instance
        self.import_name = app_instance.__class__.__name__
        self.flask_app = Flask(self.import_name)
        self.host = "localhost" if loopback else "0.0.0.0"
        self.port = port
        self.debug = debug
        cla = self.cla

        def json_to_response(text, status=200):
            return Response(response=text, status=status, mimetype="application/json")

        def get():
            return json_to_response(cla.appmetadata(**request.args.to_dict(flat=False)))

        def post():
            raw_data = request.get_data().decode("utf-8")
            raw_params = request.args.to_dict(flat=False)
            try:
                return json_to_response(cla.annotate(raw_data, **raw_params))
            except (InvalidMmif, json.JSONDecodeError) as e:
                detail = e.message if isinstance(e, InvalidMmif) else str(e)
                return Response(response=INVALID_INPUT + detail, status=500, mimetype="text/plain")
            except Exception:
                cla.logger.exception("Error in annotation")
                return json_to_response(cla.record_error(raw_data, **raw_params).serialize(pretty=True), 500)

        self.flask_app.add_url_rule("/", "get", get, methods=["GET"])
        self.flask_app.add_url_rule("/", "post", post, methods=["POST", "PUT"])

        @self.flask_app.errorhandler(405)
        def method_not_allowed(_):
            return Response(json.dumps(METHOD_NOT_ALLOWED) + "\n", status=405, mimetype="application/json")

    def run(self, **options):
        self.serve_development(**options)

    def serve_development(self, **options):
        self.flask_app.run(host=self.host, port=self.port, debug=self.debug, **options)

    def serve_production(self, **options):
        raise NotImplementedError("the test double of the SDK has no gunicorn server")

    def test_client(self):
        return self.flask_app.test_client()
