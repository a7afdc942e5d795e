"""The test app's metadata, in its own module beside app.py as in the SDK's app template (the SDK
imports `metadata` from the app's folder, so the worker adapter must put that folder on sys.path).
"""


def appmetadata():
    return {
        "name": "Word Counter (test app)",
        "description": "Template-shaped CLAMS app for the tests of clams serve app.py.",
        "app_version": "v1",
        "mmif_version": "1.2.0",
        "app_license": "MIT",
        "identifier": "http://apps.clams.ai/word-counter-test/v1",
        "url": "https://example.org/word-counter-test",
        "input": [{"@type": "http://mmif.clams.ai/vocabulary/TextDocument/v1", "required": True}],
        "output": [{"@type": "http://mmif.clams.ai/vocabulary/Token/v1"}],
        "parameters": [
            {"name": "raiseError", "description": "fail with ValueError('boom')", "type": "boolean",
             "default": False, "multivalued": False},
            {"name": "oom", "description": "fail like PyTorch out of GPU memory", "type": "string",
             "choices": ["none", "torch", "runtime"], "default": "none", "multivalued": False},
            {"name": "holdMs", "description": "sleep this long in _annotate", "type": "integer", "default": 0,
             "multivalued": False},
            {"name": "diagnostics", "description": "add the process id and the requests running now",
             "type": "boolean", "default": False, "multivalued": False},
        ],
        "est_gpu_mem_min": 100,
        "est_gpu_mem_typ": 1000,
    }
