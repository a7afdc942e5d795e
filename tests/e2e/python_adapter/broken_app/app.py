"""A template-shaped app whose import fails (a dependency that is not installed)."""
from clams import ClamsApp
import clams_test_dependency_that_is_not_installed  # noqa: F401


class Broken(ClamsApp):
    def _appmetadata(self):
        pass

    def _annotate(self, mmif, **parameters):
        return mmif


def get_app():
    return Broken()
