"""TEST DOUBLE of clams.app (clams-python 1.7.3), see clams/__init__.py.

MMIF is handled as plain JSON (dicts), not mmif-python objects. Behaviour copied from
shared/spec/clams-app-behavior.md: §2.7 metadata loading (metadata.py beside the app's module),
§3.1 universal parameters, §3.2 casting, §3.3 refinement, §3.4 the annotate pipeline, §3.5
sign_view, §5.4 error views, §1.5 serialization (json.dumps defaults, ensure_ascii).
"""
import datetime
import importlib
import json
import logging
import os
import sys
import traceback

__all__ = ["ClamsApp", "InvalidMmif"]

logging.basicConfig(level=getattr(logging, os.environ.get("CLAMS_LOGLEVEL", "WARNING").upper(), logging.WARNING),
                    format="%(asctime)s %(name)s %(levelname)-8s %(thread)d %(message)s",
                    datefmt="%Y-%m-%d %H:%M:%S")

UNIVERSAL_PARAMETERS = [
    {"name": "pretty", "description": "The JSON body of the HTTP response will be re-formatted with 2-space "
                                      "indentation", "type": "boolean", "default": False, "multivalued": False},
    {"name": "runningTime", "description": "The running time of the app will be recorded in the view metadata",
     "type": "boolean", "default": True, "multivalued": False},
    {"name": "hwFetch", "description": "The hardware information (architecture, GPU and vRAM) will be recorded in "
                                       "the view metadata", "type": "boolean", "default": False,
     "multivalued": False},
    {"name": "tfSamplingMode", "description": "Sampling mode for TimeFrame annotations.", "type": "string",
     "choices": ["representatives", "single", "all"], "default": "representatives", "multivalued": False},
]
FALSE_STRINGS = ("False", "false", "F", "f", "0")


class InvalidMmif(ValueError):
    """Stands in for jsonschema.ValidationError: `message` is the short reason."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class Metadata(dict):
    """The app metadata (a dict), with the attributes the adapter and apps read."""

    @property
    def identifier(self):
        return self.get("identifier", "")

    @property
    def est_gpu_mem_typ(self):
        return self.get("est_gpu_mem_typ", 0)


def _check_mmif(data):
    """The MMIF schema rules the double checks (the SDK runs the full JSON schema)."""
    if not isinstance(data, dict):
        raise InvalidMmif("%r is not of type 'object'" % (data,))
    for key in data:
        if key not in ("metadata", "documents", "views"):
            raise InvalidMmif("Additional properties are not allowed (%r was unexpected)" % key)
    for key in ("metadata", "documents", "views"):
        if key not in data:
            raise InvalidMmif("%r is a required property" % key)
    if not isinstance(data["metadata"], dict) or not isinstance(data["metadata"].get("mmif"), str):
        raise InvalidMmif("'mmif' is a required property")


def _cast(value, ptype):
    if ptype == "boolean":
        return value not in FALSE_STRINGS
    if ptype == "integer":
        return int(value)
    if ptype == "number":
        return float(value)
    if ptype == "map":
        key, val = value.split(":", 1)
        return {key: val}
    return value


def _now():
    return datetime.datetime.now()


class ClamsApp:
    def __init__(self):
        module = sys.modules.get(type(self).__module__)
        folder = os.path.dirname(os.path.abspath(getattr(module, "__file__", "") or "."))
        if os.path.exists(os.path.join(folder, "metadata.py")):
            md = importlib.import_module("metadata").appmetadata()
        else:
            md = self._appmetadata()
        md = Metadata(md)
        md["parameters"] = list(md.get("parameters", [])) + [dict(p) for p in UNIVERSAL_PARAMETERS]
        self.metadata = md
        self.logger = logging.getLogger(md.identifier)

    def _appmetadata(self):
        raise NotImplementedError()

    def _annotate(self, mmif, **parameters):
        raise NotImplementedError()

    # --- metadata --------------------------------------------------------------------------------

    def appmetadata(self, **kwargs):
        pretty = "pretty" in kwargs and kwargs["pretty"][0] not in FALSE_STRINGS
        if pretty:
            return json.dumps(self.metadata, indent=2, ensure_ascii=False)
        return json.dumps(self.metadata, separators=(",", ":"), ensure_ascii=False)

    # --- parameters ------------------------------------------------------------------------------

    def _declared(self):
        return {p["name"]: p for p in self.metadata["parameters"]}

    def _refine_params(self, **raw):
        if "#RAW#" in raw:
            return raw
        refined = {}
        for name, spec in self._declared().items():
            if name in raw:
                values = [_cast(v, spec["type"]) for v in raw[name]]
                value = values if spec.get("multivalued") else values[0]
                if spec.get("choices") and value not in spec["choices"]:
                    raise ValueError('Value for parameter "%s" must be one of %s.' % (name, spec["choices"]))
                refined[name] = value
            elif spec.get("default") is not None:
                default = spec["default"]
                if spec.get("multivalued"):
                    refined[name] = [_cast(str(d), spec["type"]) for d in default]
                else:
                    refined[name] = _cast(str(default), spec["type"])
            else:
                raise ValueError('Cannot find configuration for a required parameter "%s".' % name)
        refined["#RAW#"] = raw
        return refined

    def _raw_strings(self, raw):
        declared = self._declared()
        out = {}
        for name, values in raw.items():
            if name in declared and declared[name].get("multivalued"):
                out[name] = str(values)
            else:
                out[name] = values[0] if values else "[]"
        return out

    # --- views -----------------------------------------------------------------------------------

    @staticmethod
    def new_view(mmif):
        taken = {v.get("id") for v in mmif["views"]}
        n = len(mmif["views"])
        while "v_%d" % n in taken:
            n += 1
        view = {"id": "v_%d" % n, "metadata": {"timestamp": _now().isoformat(), "app": "", "contains": {}},
                "annotations": []}
        mmif["views"].append(view)
        return view

    def sign_view(self, view, conf):
        md = view["metadata"]
        md["app"] = self.metadata.identifier
        if self.metadata.get("app_tags"):
            rest = dict(md)
            md.clear()
            md["appTags"] = list(self.metadata["app_tags"])  # unnamed: first
            md.update(rest)
        if "#RAW#" in conf:
            raw = conf["#RAW#"]
            if raw:
                md["parameters"] = self._raw_strings(raw)
            md["appConfiguration"] = {k: v for k, v in conf.items() if k != "#RAW#"}
        elif conf:
            md["parameters"] = self._raw_strings(conf)

    # --- annotate --------------------------------------------------------------------------------

    def annotate(self, mmif, **runtime_params):
        if isinstance(mmif, (str, bytes)):
            data = json.loads(mmif)
            _check_mmif(data)
        else:
            data = mmif
        existing = {v.get("id") for v in data["views"]}
        declared = self._declared()
        warnings = ['An undefined parameter "%s" (value: "%s") is passed' % (k, v)
                    for k, v in runtime_params.items() if k not in declared]
        refined = self._refine_params(**runtime_params)
        t0 = _now()
        data = self._annotate(data, **refined)
        if warnings:
            view = self.new_view(data)
            self.sign_view(view, refined)
            del view["metadata"]["contains"]
            view["metadata"]["warnings"] = warnings
        run_id = _now()
        for view in data["views"]:
            md = view["metadata"]
            if view.get("id") in existing or md.get("app") != self.metadata.identifier:
                continue
            md["timestamp"] = run_id.isoformat()
            if refined.get("runningTime"):
                # Unnamed properties come first in mmif-python's output (appTags, appProfiling).
                rest = {k: v for k, v in md.items() if k not in ("appTags", "appProfiling")}
                tags = md.get("appTags")
                md.clear()
                if tags:
                    md["appTags"] = tags
                md["appProfiling"] = {"runningTime": str(run_id - t0)}
                md.update(rest)
        if refined.get("pretty"):
            return json.dumps(data, indent=2)
        return json.dumps(data)

    # --- errors ----------------------------------------------------------------------------------

    def set_error_view(self, mmif, **runtime_params):
        data = json.loads(mmif) if isinstance(mmif, (str, bytes)) else mmif
        exc_type, exc, tb = sys.exc_info()
        view = self.new_view(data)
        self.sign_view(view, runtime_params)
        error = {"message": "%s: %s" % (exc_type, exc)}
        trace = "\t\n".join(traceback.format_tb(tb)) if tb is not None else ""
        if trace:
            error["stackTrace"] = trace
        del view["metadata"]["contains"]
        view["metadata"]["error"] = error
        return _Serializable(data)

    record_error = set_error_view


class _Serializable:
    def __init__(self, data):
        self.data = data

    def serialize(self, pretty=False):
        return json.dumps(self.data, indent=2 if pretty else None)
