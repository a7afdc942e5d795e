"""An app file the adapter cannot serve: no get_app() and two ClamsApp subclasses."""
from clams import ClamsApp


class First(ClamsApp):
    pass


class Second(ClamsApp):
    pass
